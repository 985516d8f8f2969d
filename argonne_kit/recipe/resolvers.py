"""Core resolve steps: derived values and cross-section checks.

Later capabilities add theirs with ``@resolver``; plugins add theirs through a ``resolve(self,
resolved)`` method on their config class.
"""

from __future__ import annotations

from typing import Any

from argonne_kit.errors import RecipeError
from argonne_kit.recipe.api import ResolvedRecipe, resolver


@resolver
def resolve_model(resolved: ResolvedRecipe) -> None:
    """The model's derived shape (head_dim, KV heads, MLP width, per-layer windows…), as its kind's
    config derives it."""
    resolved.derived["model"] = resolved.recipe.model.config.derive()


@resolver
def resolve_batch(resolved: ResolvedRecipe) -> None:
    """Gradient accumulation from the token batch (for the data-parallel ranks among
    ``run.nproc`` processes, or 1). A parallel config whose ranks are not all data-parallel (tensor
    parallel) says how many are with ``data_parallel_world(nproc)`` (the parallel config contract)."""
    train = resolved.recipe.train
    dp_world = resolved.recipe.parallel.config.data_parallel_world(resolved.recipe.run.nproc or 1)
    out = batch_math(train.total_batch_tokens, train.micro_batch_size, train.seq_len, dp_world)
    out["dp_world_assumed"] = dp_world
    resolved.derived["train"] = out


def batch_math(total_batch_tokens: int | None, micro_batch_size: int, seq_len: int, dp_world: int) -> dict[str, Any]:
    """Tokens per micro-step over all ranks and the accumulation steps; refuses a token batch
    that the micro-batches do not divide (prints requested vs what is possible)."""
    per_micro = micro_batch_size * seq_len * dp_world
    if total_batch_tokens is None:
        accum = 1
    else:
        if total_batch_tokens % per_micro:
            lower = max(1, total_batch_tokens // per_micro) * per_micro
            raise RecipeError(
                f"train.total_batch_tokens: requested {total_batch_tokens:,} tokens per step is not a "
                f"multiple of micro_batch_size·seq_len·dp_world = {micro_batch_size}·{seq_len}·{dp_world} "
                f"= {per_micro:,}; the nearest possible values are {lower:,} and {lower + per_micro:,}"
            )
        accum = total_batch_tokens // per_micro
    return {"grad_accum_steps": accum, "tokens_per_step": accum * per_micro}


@resolver
def check_context(resolved: ResolvedRecipe) -> None:
    """``train.seq_len`` must fit the model's context: training past it is either an index error
    (learned positions) or a model whose exported config claims a shorter context than it was
    trained on. A chained stage (``init.from``) takes the context from its source model, so it
    is checked when that model is read."""
    if resolved.recipe.init.from_ is not None:
        return
    seq_len = resolved.recipe.train.seq_len
    key, context = resolved.recipe.model.config.context()
    if seq_len > context:
        raise RecipeError(
            f"train.seq_len: {seq_len} exceeds the model's context (model.{key} = {context}); "
            f"raise model.{key} or lower train.seq_len"
        )


@resolver
def resolve_schedule(resolved: ResolvedRecipe) -> None:
    """When the phase length is known from the recipe alone (``train.max_steps`` or
    ``train.max_tokens``): the LR at the first, warmup-end, cooldown-start and last steps, and
    the refusal of a decaying schedule that never decays (D-2/D-3). Otherwise the run does both
    once it knows the data size."""
    from argonne_kit.recipe.schedule_check import check_schedule_decays, lr_landmarks
    from argonne_kit.registry import get_registry

    recipe = resolved.recipe
    train = recipe.train
    tokens_per_step = resolved.derived["train"]["tokens_per_step"]
    if train.max_steps is not None:
        total = train.max_steps
    elif train.max_tokens is not None:
        total = train.max_tokens // tokens_per_step
    else:
        return
    section = recipe.schedule
    component = get_registry().get("schedule", section.kind)
    schedule = component.factory(section.config)
    check_schedule_decays(section.kind, schedule, total)
    marks = lr_landmarks(schedule, total, recipe.optim.lr)
    resolved.derived["train"]["total_steps"] = total
    resolved.derived["schedule"] = {f"lr_{name}": lr for name, _step, lr in marks} | {
        f"step_{name}": step for name, step, _lr in marks
    }
    resolved.notes.append(
        f"LR ({section.kind}, {total:,} steps): "
        + ", ".join(f"{name} step {step}: {lr:.3e}" for name, step, lr in marks)
    )


@resolver
def check_attention_windows(resolved: ResolvedRecipe) -> None:
    """A window configured in the model must be honoured by the chosen backend, or the recipe is
    refused here rather than at run start (D-4). ``auto`` picks a capable backend per layer."""
    from argonne_kit.registry import get_registry

    section = resolved.recipe.attention
    windows = [w for w in resolved.derived.get("model", {}).get("layer_windows", []) if w]
    if section.kind == "auto" or not windows:
        return
    backend = get_registry().get("attention", section.kind).factory(section.config)
    if not backend.capabilities.window:
        raise RecipeError(
            f"attention.kind: backend {section.kind!r} has no sliding-window support, but "
            f"model.local_attention_window = {windows[0]} is set on {len(windows)} layers; "
            f"choose a backend with windows (e.g. 'sdpa' or 'auto') or remove the window"
        )
