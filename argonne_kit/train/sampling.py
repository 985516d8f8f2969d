"""Text samples written by the main rank at checkpoints and at the end.

A sample is telemetry: it can never fail or stall the run (D-21). Every rank calls
:func:`sample_text` (a sharded model needs every rank to gather its full weights); only the main
rank generates, inside ``try``, on a model that is not wrapped by a collective-issuing strategy,
with the training RNG streams forked so that a sample never changes the training trajectory
(exact resume stays exact).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from argonne_kit.recipe.sections import SampleConfig


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


def generate(model: torch.nn.Module, tokenizer, cfg: SampleConfig, *, seed: int) -> str:
    """Prompt → continuation with the recipe's sampling settings (eos stops it)."""
    device = next(model.parameters()).device
    ids = tokenizer(cfg.prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(device)
    was_training = model.training
    model.eval()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(seed)
            greedy = cfg.temperature <= 0
            kwargs = {} if greedy else {"temperature": cfg.temperature, "top_p": cfg.top_p}
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=cfg.max_new_tokens,
                                 do_sample=not greedy, eos_token_id=tokenizer.eos_token_id,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id, **kwargs)
    finally:
        model.train(was_training)
    return cfg.prompt + tokenizer.decode(out[0, ids.size(1):], skip_special_tokens=True)


def sample_text(strategy, model, tokenizer, cfg: SampleConfig, *, seed: int,
                build_copy: Callable[[], torch.nn.Module], log: Callable[[str], None]) -> str | None:
    """The sample text on the main rank (None elsewhere, when disabled, or when it failed —
    the failure is logged, never raised)."""
    if not cfg.enabled:
        return None
    try:
        plain = main_rank_model(strategy, model, build_copy)
        if plain is None:
            return None
        return generate(plain, tokenizer, cfg, seed=seed)
    except Exception as exc:  # noqa: BLE001 — telemetry must never end a run (D-21)
        log(f"sample: generation failed ({type(exc).__name__}: {exc}); training continues")
    return None
