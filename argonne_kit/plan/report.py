"""A plan of a resolved recipe: parameters, memory, FLOPs, time, LR curve and warnings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from argonne_kit.contracts.config import DataConfig
from argonne_kit.errors import RecipeError
from argonne_kit.plan.flops import attention_flops_per_token, flops_per_token
from argonne_kit.plan.gpus import GPU, USABLE_FRACTION
from argonne_kit.plan.memory import GIB, MemoryPlan, StepSetup, plan_memory
from argonne_kit.plan.params import ParamCounts, build_meta_model, count_parameters, model_shape
from argonne_kit.plan.shape import ModelShape


@attrs.define
class Plan:
    """Everything ``argonne-kit plan`` prints (also as JSON through :meth:`to_dict`)."""

    params: ParamCounts
    shape: ModelShape
    setup: StepSetup
    memory: MemoryPlan | None
    gpu: GPU
    gpus: int
    flops_per_token: int
    attention_flops_per_token: int
    tokens_per_step: int
    grad_accum_steps: int
    total_steps: int | None
    mfu: float
    tokens_per_s: float | None
    warnings: list[str] = attrs.field(factory=list)
    lr_marks: list[tuple[str, int, float]] = attrs.field(factory=list)

    @property
    def flops_per_step(self) -> int:
        return self.flops_per_token * self.tokens_per_step

    @property
    def phase_tokens(self) -> int | None:
        return None if self.total_steps is None else self.total_steps * self.tokens_per_step

    @property
    def peak_flops(self) -> float:
        return self.gpu.peak(self.setup.precision) * self.gpus

    def hours(self) -> float | None:
        """Wall-clock hours of the phase at :attr:`mfu`."""
        if self.phase_tokens is None:
            return None
        return self.phase_tokens * self.flops_per_token / (self.peak_flops * self.mfu) / 3600

    def implied_mfu(self) -> float | None:
        """MFU that a measured throughput of :attr:`tokens_per_s` (all GPUs together) means."""
        if self.tokens_per_s is None:
            return None
        return self.tokens_per_s * self.flops_per_token / self.peak_flops

    def fits(self) -> str | None:
        if self.memory is None:
            return None
        share = self.memory.peak / self.gpu.memory_bytes
        return "fits" if share <= USABLE_FRACTION else "tight" if share <= 1.0 else "does not fit"

    def to_dict(self) -> dict[str, Any]:
        p = self.params
        hours = self.hours()
        out: dict[str, Any] = {
            "parameters": {
                "total": p.total,
                "non_embedding": p.non_embedding,
                "embedding": p.embedding,
                "untied_head": p.head,
                "matmul": p.matmul,
                "vocab_rows": p.vocab_rows,
                "vocab_unpadded": p.vocab_unpadded,
                "total_unpadded": p.total_unpadded,
            },
            "gpu": self.gpu.name,
            "gpus": self.gpus,
            "strategy": self.setup.strategy,
            "flops_per_token": self.flops_per_token,
            "attention_flops_per_token": self.attention_flops_per_token,
            "flops_per_step": self.flops_per_step,
            "tokens_per_step": self.tokens_per_step,
            "grad_accum_steps": self.grad_accum_steps,
            "total_steps": self.total_steps,
            "phase_tokens": self.phase_tokens,
            "mfu": self.mfu,
            "hours": hours,
            "gpu_hours": None if hours is None else hours * self.gpus,
            "tokens_per_s": self.tokens_per_s,
            "implied_mfu": self.implied_mfu(),
            "warnings": self.warnings,
            "lr_landmarks": [{"name": n, "step": s, "lr": lr} for n, s, lr in self.lr_marks],
        }
        if self.memory is not None:
            out["memory"] = {
                "components_bytes": self.memory.components,
                "peak_bytes": self.memory.peak,
                "peak_phase": self.memory.peak_phase,
                "gpu_bytes": self.gpu.memory_bytes,
                "verdict": self.fits(),
            }
        return out


def step_setup(resolved, world: int, micro_batch_size: int | None = None) -> StepSetup:
    """The memory-relevant settings of a resolved recipe for ``world`` GPUs."""
    from argonne_kit.registry import get_registry

    recipe = resolved.recipe
    train = recipe.train
    parallel = recipe.parallel
    objective = get_registry().get("objective", recipe.objective.kind).factory(recipe.objective.config)
    rows = micro_batch_size or train.micro_batch_size
    if objective.needs_reference_model:
        rows *= 2  # chosen and rejected go through the model together
    return StepSetup(
        micro_batch_size=rows,
        seq_len=train.seq_len,
        precision=train.precision,
        activation_checkpointing=train.activation_checkpointing,
        checkpoint_every=train.checkpoint_every,
        loss_chunk_size=objective.loss_chunk_size,
        strategy=parallel.kind,
        world_size=world,
        layout=parallel.config.memory_layout(world),
        reference_model=objective.needs_reference_model,
        reference_precomputed=objective.needs_reference_model and objective.precomputes_reference(),
    )


def make_plan(
    resolved,
    *,
    gpu: GPU,
    gpus: int,
    mfu: float,
    tokens_per_s: float | None = None,
    vocab_size: int | None = None,
    data_tokens: int | None = None,
) -> Plan:
    """Plan ``resolved`` on ``gpus`` GPUs of kind ``gpu``. ``vocab_size`` is the tokenizer's length,
    used when the recipe does not set ``model.vocab_size``; ``data_tokens`` sizes an epoch of
    ``[data]`` when the data is not on disk."""
    from argonne_kit.recipe.resolvers import batch_math
    from argonne_kit.recipe.schedule_check import check_schedule_decays, lr_landmarks
    from argonne_kit.registry import get_registry

    recipe = resolved.recipe
    train = recipe.train
    most = recipe.parallel.config.max_processes()
    if most is not None and gpus > most:
        runs = "one process" if most == 1 else f"at most {most} processes"
        raise RecipeError(
            f'{resolved.source}: parallel.kind = "{recipe.parallel.kind}" runs {runs}; plan it on '
            f"{most} GPU{'s' if most > 1 else ''} or choose ddp/fsdp/tp for {gpus}"
        )
    section_vocab = recipe.model.config.vocab_size
    if section_vocab is None and vocab_size is None:
        raise RecipeError(f"{resolved.source}: model.vocab_size comes from the tokenizer; give its length")
    # the recipe's own vocab_size wins; ``vocab_size`` stands in for the tokenizer's length
    model = build_meta_model(recipe.model, None if section_vocab else vocab_size)
    config_vocab = section_vocab or vocab_size
    assert config_vocab is not None  # refused above; a recipe's model.vocab_size is positive when set
    params = count_parameters(model, config_vocab)
    shape = model_shape(model)
    setup = step_setup(resolved, gpus)
    warnings: list[str] = []
    memory = None
    if shape.family == "argonne2":
        memory = plan_memory(shape, params.total, setup)
    else:
        warnings.append("memory: the per-GPU memory model covers the argonne2 family; not planned for 1.x")
    dp_world = recipe.parallel.config.data_parallel_world(gpus)
    batch = batch_math(train.total_batch_tokens, train.micro_batch_size, train.seq_len, max(1, dp_world))
    total_steps = _phase_steps(train, batch["tokens_per_step"], data_tokens, resolved)
    plan = Plan(
        params=params,
        shape=shape,
        setup=setup,
        memory=memory,
        gpu=gpu,
        gpus=gpus,
        flops_per_token=flops_per_token(shape, params.matmul, train.seq_len),
        attention_flops_per_token=attention_flops_per_token(shape, train.seq_len),
        tokens_per_step=batch["tokens_per_step"],
        grad_accum_steps=batch["grad_accum_steps"],
        total_steps=total_steps,
        mfu=mfu,
        tokens_per_s=tokens_per_s,
        warnings=warnings,
    )
    if total_steps is None:
        warnings.append(
            "steps: the phase length depends on the data size, which is unknown here (no data "
            "at the recipe's path); pass --data-tokens N"
        )
    else:
        section = recipe.schedule
        schedule = get_registry().get("schedule", section.kind).factory(section.config)
        try:
            check_schedule_decays(section, schedule, total_steps)
        except RecipeError as exc:
            warnings.append(str(exc))
        plan.lr_marks = lr_landmarks(schedule, total_steps, recipe.optim.lr)
    if memory is not None:
        _memory_warnings(plan, memory, resolved)
        if train.compile:
            warnings.append(
                "memory: planned for eager execution; with train.compile inductor fuses elementwise "
                "work (softcap, cross-entropy) and usually needs less"
            )
    return plan


def _phase_steps(train, tokens_per_step: int, data_tokens: int | None, resolved) -> int | None:
    if train.max_steps is not None:
        return train.max_steps
    if train.max_tokens is not None:
        return max(1, train.max_tokens // tokens_per_step)
    tokens = data_tokens if data_tokens is not None else _data_tokens(resolved)
    if tokens is None:
        return None
    return max(1, tokens * train.epochs // tokens_per_step)


def _data_tokens(resolved) -> int | None:
    """Tokens of ``[data]`` when its source can tell without tokenizing (a shard manifest), else None."""
    section = resolved.recipe.data
    if section is None or not isinstance(section.config, DataConfig):
        return None
    return section.config.planned_tokens(str(resolved.base_dir))


def _memory_warnings(plan: Plan, memory: MemoryPlan, resolved) -> None:
    gpu = plan.gpu
    share = memory.peak / gpu.memory_bytes
    if share > 1.0:
        plan.warnings.append(
            f"memory: the predicted peak {memory.peak / GIB:.1f} GiB does not fit a {gpu.name} "
            f"({gpu.memory_bytes / GIB:.1f} GiB); lower train.micro_batch_size, turn on "
            "train.activation_checkpointing or chunked cross-entropy, or shard (fsdp)"
        )
    elif share > USABLE_FRACTION:
        plan.warnings.append(
            f"memory: the predicted peak uses {share:.0%} of a {gpu.name}; little room for the "
            "CUDA context and fragmentation"
        )
    elif share < 0.5:
        best = largest_micro_batch(plan, resolved)
        if best > resolved.recipe.train.micro_batch_size:
            plan.warnings.append(
                f"memory: the predicted peak uses only {share:.0%} of a {gpu.name}; "
                f"train.micro_batch_size up to {best} would fit"
            )


def largest_micro_batch(plan: Plan, resolved, limit: int = 4096) -> int:
    """The largest micro-batch whose predicted peak stays within the usable memory."""
    best, size = 0, 1
    budget = plan.gpu.memory_bytes * USABLE_FRACTION
    while size <= limit:
        setup = step_setup(resolved, plan.gpus, micro_batch_size=size)
        if plan_memory(plan.shape, plan.params.total, setup).peak > budget:
            break
        best, size = size, size + max(1, size // 8)
    return best


def plot_lr(plan: Plan, resolved, path: Path) -> Path:
    """The phase's learning rate per step as a PNG."""
    from argonne_kit.registry import get_registry

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RecipeError("--lr-plot needs matplotlib (pip install matplotlib, or the [dev] extra)") from None
    if plan.total_steps is None:
        raise RecipeError("--lr-plot: the phase length is unknown; pass --data-tokens N")
    section = resolved.recipe.schedule
    schedule = get_registry().get("schedule", section.kind).factory(section.config)
    total = plan.total_steps
    stride = max(1, total // 2000)
    steps = list(range(0, total, stride)) + [total - 1]
    lrs = [resolved.recipe.optim.lr * schedule.factor(s, total) for s in steps]
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(steps, lrs, color="tab:orange")
    for name, step, lr in plan.lr_marks:
        ax.annotate(name, (step, lr), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title(f"{section.kind}, {total:,} steps")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
