"""Text samples written by the main rank at checkpoints and at the end.

A sample is telemetry: it can never fail or stall the run (D-21). Every rank calls
:func:`sample_text` (a sharded model needs every rank to gather its full weights); only the main
rank generates, inside ``try``, on a model that is not wrapped by a collective-issuing strategy,
with the training RNG streams forked so that a sample never changes the training trajectory
(exact resume stays exact).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import torch

from argonne_kit.recipe.sections import SampleConfig


class GenerativeModel(Protocol):
    """What generating needs of a model: a module with transformers' ``generate`` (the kit's
    causal LMs, or any module that offers it)."""

    training: bool

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...

    def eval(self) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...

    def generate(self, *args: Any, **kwargs: Any) -> Any: ...


def has_sharded_parameters(model: torch.nn.Module) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def main_rank_model(strategy, model: torch.nn.Module, build_copy: Callable[[], torch.nn.Module]):
    """A plain (unsharded, unwrapped) model on the main rank, None elsewhere. Collective when
    the parameters are sharded: every rank must call it."""
    inner = strategy.unwrap(model)
    if not has_sharded_parameters(inner):
        return inner if strategy.is_main else None
    state = strategy.full_model_state_dict(model)
    if not strategy.is_main:
        return None
    copy = build_copy()
    copy.load_state_dict(state, strict=False)
    return copy


def continue_ids(
    model: GenerativeModel,
    prompt_ids: list[int],
    *,
    max_new_tokens: int,
    eos_token_id: int | None,
    pad_token_id: int | None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
) -> list[int]:
    """The one text-generation path (samples, the chat probe, ``generate``, ``chat``): the new
    token ids after ``prompt_ids``, up to and including ``eos_token_id`` when reached. Greedy when
    ``temperature <= 0``. In eval mode and without gradients; the training mode is restored, and
    with a ``seed`` the RNG streams are forked, so generating never changes a training run."""
    device = next(model.parameters()).device
    ids = torch.tensor([prompt_ids], device=device)
    sampling = (
        {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
    )
    pad = pad_token_id if pad_token_id is not None else eos_token_id
    was_training = model.training
    model.eval()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices, enabled=seed is not None), torch.no_grad():
            if seed is not None:
                torch.manual_seed(seed)
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                eos_token_id=eos_token_id,
                pad_token_id=pad,
                **sampling,
            )
    finally:
        model.train(was_training)
    return out[0, ids.shape[1] :].tolist()


def generate(model: GenerativeModel, tokenizer, cfg: SampleConfig, *, seed: int) -> str:
    """Prompt → continuation with the recipe's sampling settings (eos stops it)."""
    ids = tokenizer(cfg.prompt, add_special_tokens=False)["input_ids"]
    new = continue_ids(
        model,
        ids,
        max_new_tokens=cfg.max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        seed=seed,
    )
    return cfg.prompt + tokenizer.decode(new, skip_special_tokens=True)


def sample_text(
    strategy,
    model,
    tokenizer,
    cfg: SampleConfig,
    *,
    seed: int,
    build_copy: Callable[[], torch.nn.Module],
    log: Callable[[str], None],
) -> str | None:
    """The sample text on the main rank (None elsewhere, when disabled, or when it failed —
    the failure is logged, never raised)."""
    if not cfg.enabled:
        return None
    try:
        plain = main_rank_model(strategy, model, build_copy)
        if plain is None:
            return None
        return generate(plain, tokenizer, cfg, seed=seed)
    except Exception as exc:
        log(f"sample: generation failed ({type(exc).__name__}: {exc}); training continues")
    return None
