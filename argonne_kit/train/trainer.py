"""The training loop shared by every stage.

One optimizer step = ``grad_accum_steps`` micro-batches on every data-parallel rank. The loss is
the mean over every supervised unit of the global batch (D-13 contract of the objectives): the
micro-batches' unit counts are summed and all-reduced *before* the forward passes, and each
micro-batch's loss sum is divided by that global count. Metrics are reduced with one collective
and copied to the host once per step (D-18); counters are global (D-24).

The trainer needs a model, an optimizer, an objective, a data source and a strategy; everything
optional (metrics, progress, validation, checkpoint and stop triggers, samples, probes,
divergence detection) is a :class:`~argonne_kit.contracts.trainer.TrainerCallback`
(:mod:`argonne_kit.train.callbacks`).
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import torch

from argonne_kit.contracts.data import DataSource
from argonne_kit.contracts.objective import Objective
from argonne_kit.contracts.parallel import PRECISION_DTYPES, ParallelStrategy
from argonne_kit.contracts.schedule import LRSchedule
from argonne_kit.contracts.trainer import TrainerCallback
from argonne_kit.errors import DataError
from argonne_kit.train.optimizer import set_lr
from argonne_kit.train.state import Counters, capture_rng, restore_rng

if TYPE_CHECKING:
    from argonne_kit.train.checkpoint import CheckpointManager


class Outcome(enum.Enum):
    """How the loop ended."""

    COMPLETED = "completed"  # the budget is done (and the final checkpoint verified, when saving)
    STOPPED = "stopped"  # wall time / deadline / signal: saved, exit 0, no export (D-25)
    FAILED = "failed"  # the final save was refused: exit non-zero, no export (D-9)
    DIVERGED = "diverged"  # halted after repeated failed steps: nothing saved, exit non-zero


@attrs.define(kw_only=True)
class LoopSettings:
    """The numbers the loop needs, already resolved."""

    total_steps: int
    """Optimizer steps of this phase."""
    tokens_per_step: int
    """Tokens of one optimizer step over all ranks (counted, never measured: D-24)."""
    grad_accum_steps: int = 1
    """Micro-batches per optimizer step on each rank."""
    peak_lr: float | None = None
    """LR the schedule multiplies; None = leave the optimizer's LR as it is (no schedule)."""
    grad_clip: float | None = None
    """Clip the global gradient norm to this (None or 0 = measure only)."""
    precision: str = "fp32"
    """``fp32``, or ``bf16``/``fp16`` autocast (fp16 adds a grad scaler)."""
    recipe_toml: str = ""
    """The resolved recipe written into every checkpoint."""


def autocast_context(precision: str, device: torch.device):
    """bf16/fp16 autocast around forward (fp32 master weights stay fp32); fp32 = no autocast."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISION_DTYPES[precision])


def cpu_bf16_warning(precision: str, device: torch.device, cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """A warning when bf16 autocast would run on a CPU without bf16 instructions (avx512_bf16
    or AMX): torch then emulates bf16, and a bf16 step is slower than an fp32 one — even on CPUs
    without AVX-512, where the model's linear layers run their matmuls as fp32 SGEMMs
    (:mod:`argonne_kit.model.linear`), attention and elementwise bf16 kernels stay emulated
    (benchmarks/README.md). None when it does not apply or the flags are unknown."""
    if precision != "bf16" or device.type != "cpu":
        return None
    try:
        with open(cpuinfo) as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None)
    except OSError:
        return None
    if flags is None or {"avx512_bf16", "amx_bf16"} & set(flags):
        return None
    return (
        'train.precision = "bf16" on a CPU without avx512_bf16/AMX: bf16 kernels are emulated and '
        'slower than fp32 here; train.precision = "fp32" is faster on this machine'
    )


class Trainer:
    """Runs one phase: optimizer steps, and checkpoints when a callback asks for one.

    ``schedule`` (with ``settings.peak_lr``) sets the LR of each step; ``checkpoints`` saves
    (None = a loop that never saves); ``counters`` start where a previous stage ended (init
    carry-over); ``callbacks`` add everything else (see the contract).
    """

    def __init__(
        self,
        *,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        objective: Objective,
        data: DataSource,
        strategy: ParallelStrategy,
        settings: LoopSettings,
        schedule: LRSchedule | None = None,
        checkpoints: CheckpointManager | None = None,
        counters: Counters | None = None,
        callbacks: Sequence[TrainerCallback] = (),
        log: Callable[[str], None] = print,
    ):
        self.s = settings
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.objective = objective
        self.schedule = schedule
        self.data = data
        self.checkpoints = checkpoints
        self.callbacks = list(callbacks)
        self.log = log
        self.counters = counters if counters is not None else Counters()
        self.device = strategy.device
        self.scaler = torch.amp.GradScaler(self.device.type) if settings.precision == "fp16" else None
        self.last_saved_step: int | None = None
        self.last_save_time = time.monotonic()
        self._save_requested = False
        self._stop_reason: str | None = None
        self._halt_reason: str | None = None

    @property
    def is_last_step(self) -> bool:
        """True once the phase's last step is done."""
        return self.counters.phase_step >= self.s.total_steps

    # -- requests from callbacks -------------------------------------------------------------
    def request_save(self) -> None:
        """Save a checkpoint after this step (from ``pre_reduce``; any rank may ask)."""
        self._save_requested = True

    def request_stop(self, reason: str) -> None:
        """Save and stop after this step (from ``pre_reduce``; any rank may ask)."""
        self._stop_reason = reason

    def halt(self, reason: str) -> None:
        """End the loop after this step without saving (from ``post_batch``, on every rank:
        the step's metrics are global, so ranks decide alike)."""
        self._halt_reason = reason

    # -- state -----------------------------------------------------------------------------
    def trainer_state(self) -> dict[str, Any]:
        c = self.counters
        return {
            "global_step": c.global_step,
            "global_tokens": c.global_tokens,
            "phase_step": c.phase_step,
            "phase_tokens": c.phase_tokens,
            "train_time_s": c.train_time_s,
            "phase_total_steps": self.s.total_steps,
            "tokens_per_step": self.s.tokens_per_step,
            "dp_rank": self.strategy.dp_rank,
            "dp_world": self.strategy.dp_world,
            "rng": capture_rng(),
            "data": self.data.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }

    def restore(self, state: dict[str, Any], *, counters: bool = True, position: bool = True) -> None:
        """Restore counters (``counters``) and the schedule/data/RNG position (``position``)."""
        if counters:
            self.counters.global_step = state["global_step"]
            self.counters.global_tokens = state["global_tokens"]
        if position:
            self.counters.phase_step = state["phase_step"]
            self.counters.phase_tokens = state["phase_tokens"]
            self.counters.train_time_s = state.get("train_time_s", 0.0)
            self.data.load_state_dict(state["data"])
            restore_rng(state["rng"])
            if self.scaler is not None and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.last_saved_step = self.counters.global_step

    # -- the loop ----------------------------------------------------------------------------
    def train(self) -> Outcome:
        outcome: Outcome | None = None
        try:
            for callback in self.callbacks:
                callback.pre_train(self)
            outcome = self._loop()
            if self.checkpoints is not None and not self.checkpoints.wait():
                # the last save, written in the background (checkpoint.async_save), was refused
                outcome = Outcome.FAILED
            return outcome
        finally:
            if outcome is None and self.checkpoints is not None:
                with contextlib.suppress(Exception):  # the loop's own error is the one to report
                    self.checkpoints.wait()
            for callback in self.callbacks:
                callback.post_train(self, outcome)

    def _loop(self) -> Outcome:
        s, c = self.s, self.counters
        batches = iter(self.data)
        while c.phase_step < s.total_steps:
            for callback in self.callbacks:
                callback.pre_step(self)
            step_start = time.monotonic()
            stats = self.step(batches)
            c.advance(s.tokens_per_step)
            c.train_time_s += time.monotonic() - step_start
            for callback in self.callbacks:
                callback.post_batch(self, stats)
            if self._halt_reason is not None:
                return Outcome.DIVERGED
            if stats["stop"] and not self.is_last_step:
                reason = self._stop_reason or "another rank asked to stop"
                self.log(f"stopping early at step {c.global_step}: {reason}; saving (no export, D-25)")
                # a refused save (non-finite weights) must not look like a clean, resumable slice
                return Outcome.STOPPED if self.save() else Outcome.FAILED
            if stats["save"] and not self.is_last_step:
                self.save()
            for callback in self.callbacks:
                callback.post_step(self)
        if self.checkpoints is None or self.last_saved_step == c.global_step:
            return Outcome.COMPLETED
        return Outcome.COMPLETED if self.save(final=True) else Outcome.FAILED

    def step(self, batches: Iterator[dict[str, torch.Tensor]]) -> dict[str, Any]:
        """One optimizer step; returns host floats (one device→host copy)."""
        s, strategy, model = self.s, self.strategy, self.model
        if self.schedule is not None and s.peak_lr is not None:
            lr = s.peak_lr * self.schedule.factor(self.counters.phase_step, s.total_steps)
            set_lr(self.optimizer, lr)
        else:
            lr = self.optimizer.param_groups[0]["lr"]
        micro = [self._next_batch(batches) for _ in range(s.grad_accum_steps)]
        units = torch.stack([self.objective.units(b) for b in micro]).sum()
        strategy.all_reduce_sum(units)
        # Strategies average gradients over data-parallel ranks; scaling by dp_world makes the
        # result the gradient of (global loss sum / global units).
        scale = strategy.dp_world / units.clamp(min=1).to(torch.float32)

        loss_sum = torch.zeros((), device=self.device, dtype=torch.float32)
        metric_sums: dict[str, torch.Tensor] = {}
        metric_totals: dict[str, torch.Tensor] = {}
        for index, batch in enumerate(micro):
            sync = index == len(micro) - 1
            with contextlib.nullcontext() if sync else strategy.no_sync(model):
                with autocast_context(s.precision, self.device):
                    out = self.objective(model, batch)
                loss = out.loss_sum * scale
                (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            loss_sum += out.loss_sum.detach().float()
            _accumulate(metric_sums, out.metric_sums)
            _accumulate(metric_totals, out.metric_totals)

        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grad_norm = strategy.clip_grad_norm(model, s.grad_clip or None)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

        for callback in self.callbacks:
            callback.pre_reduce(self)
        # Stop/save requests must reach EVERY rank: all_reduce_sum only spans the data-parallel
        # group (a dp×tp mesh has several), so they take a global max.
        flags = torch.tensor(
            [1.0 if self._stop_reason else 0.0, 1.0 if self._save_requested else 0.0],
            dtype=torch.float32,
            device=self.device,
        )
        self._save_requested = False
        strategy.all_reduce_max(flags)
        sum_keys, total_keys = sorted(metric_sums), sorted(metric_totals)
        reduced = torch.cat(
            [
                loss_sum.view(1),
                *(metric_sums[k].float().view(1) for k in sum_keys),
                *(metric_totals[k].float().view(1) for k in total_keys),
            ]
        )
        strategy.all_reduce_sum(reduced)
        reduced = torch.cat([reduced, flags])
        host = torch.cat(
            [reduced, grad_norm.detach().float().view(1).to(self.device), units.float().view(1)]
        ).tolist()  # the one host sync of the step
        units_host = max(host[-1], 1.0)
        stats: dict[str, Any] = {"loss": host[0] / units_host, "lr": lr, "grad_norm": host[-2], "units": int(host[-1])}
        for i, key in enumerate(sum_keys):
            stats[key] = host[1 + i] / units_host
        for i, key in enumerate(total_keys):
            stats[key] = host[1 + len(sum_keys) + i]
        stats["stop"] = host[-4] > 0
        stats["save"] = host[-3] > 0
        return stats

    def _next_batch(self, batches: Iterator[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The next CPU batch, finished by the objective (e.g. precomputed reference scores),
        on the device."""
        batch = next(batches)
        missing = [name for name in self.objective.required_fields if name not in batch]
        if missing:
            raise DataError(
                f"objective {type(self.objective).__name__} needs batch fields {missing}; "
                f"the data yields {sorted(batch)} (data source {type(self.data).__name__})"
            )
        return to_device(self.objective.prepare_batch(batch), self.device)

    # -- checkpoints and evaluation -------------------------------------------------------------
    def save(self, *, final: bool = False) -> bool:
        """Save through the manager's gates; True when the checkpoint verified (then
        ``post_checkpoint``). ``final``: the end-of-budget save."""
        if self.checkpoints is None:
            return False
        c = self.counters
        path = self.checkpoints.save(
            self.model, self.optimizer, c.global_step, c.global_tokens, self.trainer_state(), self.s.recipe_toml
        )
        self.last_save_time = time.monotonic()
        if path is None:
            return False
        self.last_saved_step = c.global_step
        for callback in self.callbacks:
            callback.post_checkpoint(self, Path(path), final=final)
        return True

    @torch.no_grad()
    def evaluate(self, source: DataSource, batches: int) -> float:
        """Mean objective over the next ``batches`` micro-batches of ``source`` (every rank
        takes part: no rank-0-only collective, D-15)."""
        iterator = iter(source)
        self.model.eval()
        total = torch.zeros(2, device=self.device, dtype=torch.float64)
        try:
            for _ in range(batches):
                batch = self._next_batch(iterator)
                with autocast_context(self.s.precision, self.device):
                    out = self.objective(self.model, batch)
                total[0] += out.loss_sum.detach().double()
                total[1] += self.objective.units(batch).double()
        finally:
            self.model.train()
        self.strategy.all_reduce_sum(total)
        sums = total.tolist()
        return sums[0] / max(sums[1], 1.0)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A batch's tensors on ``device`` (the CPU batch itself on CPU)."""
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _accumulate(into: dict[str, torch.Tensor], values: dict[str, torch.Tensor]) -> None:
    for key, value in values.items():
        value = value.detach().float()
        into[key] = into[key] + value if key in into else value
