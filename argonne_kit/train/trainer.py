"""The training loop shared by every stage.

One optimizer step = ``grad_accum_steps`` micro-batches on every data-parallel rank. The loss is
the mean over every supervised unit of the global batch (D-13 contract of the objectives): the
micro-batches' unit counts are summed and all-reduced *before* the forward passes, and each
micro-batch's loss sum is divided by that global count. Metrics are reduced with one collective
and copied to the host once per step (D-18); counters are global (D-24).
"""

from __future__ import annotations

import contextlib
import enum
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import torch

from argonne_kit.contracts.data import DataSource
from argonne_kit.contracts.objective import Objective
from argonne_kit.contracts.parallel import ParallelStrategy
from argonne_kit.contracts.schedule import LRSchedule
from argonne_kit.train.checkpoint import CheckpointManager
from argonne_kit.train.metrics import MetricsLog, Progress
from argonne_kit.train.optimizer import set_lr
from argonne_kit.train.state import Counters, capture_rng, restore_rng
from argonne_kit.train.stop import StopConditions


class Outcome(enum.Enum):
    """How the loop ended."""

    COMPLETED = "completed"  # the budget is done and the final checkpoint verified
    STOPPED = "stopped"      # wall time / deadline / signal: saved, exit 0, no export (D-25)
    FAILED = "failed"        # the final save was refused: exit non-zero, no export (D-9)


@attrs.define(kw_only=True)
class LoopSettings:
    """The numbers the loop needs, already resolved."""

    total_steps: int
    """Optimizer steps of this phase."""
    grad_accum_steps: int
    tokens_per_step: int
    """Tokens of one optimizer step over all ranks."""
    peak_lr: float
    grad_clip: float | None
    precision: str
    log_every: int
    val_every: int | None
    val_batches: int
    interval_steps: int | None
    interval_s: float | None
    probe_every: int | None = None
    """Run ``on_probe`` every this many phase steps (the chat quality probe); None = never."""
    recipe_toml: str
    """The resolved recipe written into every checkpoint."""


def autocast_context(precision: str, device: torch.device):
    """bf16/fp16 autocast around forward (fp32 master weights stay fp32); fp32 = no autocast."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


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
    return ("train.precision = \"bf16\" on a CPU without avx512_bf16/AMX: bf16 kernels are emulated and "
            "slower than fp32 here; train.precision = \"fp32\" is faster on this machine")


class Trainer:
    """Runs one phase: steps, logging, validation, checkpoints, early stop."""

    def __init__(self, *, settings: LoopSettings, strategy: ParallelStrategy, model: torch.nn.Module,
                 optimizer: torch.optim.Optimizer, objective: Objective, schedule: LRSchedule,
                 data: DataSource, val_data: DataSource | None, checkpoints: CheckpointManager,
                 counters: Counters, stop: StopConditions, metrics: MetricsLog | None, progress: Progress,
                 log: Callable[[str], None], on_checkpoint: Callable[[int], None] | None = None,
                 on_probe: Callable[[int, str], None] | None = None):
        self.s = settings
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.objective = objective
        self.schedule = schedule
        self.data = data
        self.val_data = val_data
        self.val_start = val_data.state_dict() if val_data is not None else None
        self.checkpoints = checkpoints
        self.counters = counters
        self.stop = stop
        self.metrics = metrics
        self.progress = progress
        self.log = log
        self.on_checkpoint = on_checkpoint
        self.on_probe = on_probe
        self.device = strategy.device
        self.scaler = torch.amp.GradScaler(self.device.type) if settings.precision == "fp16" else None
        self.last_saved_step: int | None = None
        self.last_rate = 0.0  # tokens/s of the last logged window (for the progress bar)
        self.last_save_time = time.monotonic()

    # -- state -----------------------------------------------------------------------------
    def trainer_state(self) -> dict[str, Any]:
        c = self.counters
        return {
            "global_step": c.global_step, "global_tokens": c.global_tokens,
            "phase_step": c.phase_step, "phase_tokens": c.phase_tokens, "train_time_s": c.train_time_s,
            "phase_total_steps": self.s.total_steps, "tokens_per_step": self.s.tokens_per_step,
            "dp_rank": self.strategy.dp_rank, "dp_world": self.strategy.dp_world,
            "rng": capture_rng(), "data": self.data.state_dict(),
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
        s, c = self.s, self.counters
        batches = iter(self.data)
        window_start, window_tokens = time.monotonic(), 0
        while c.phase_step < s.total_steps:
            step_start = time.monotonic()
            stats = self.step(batches)
            c.advance(s.tokens_per_step)
            c.train_time_s += time.monotonic() - step_start
            window_tokens += s.tokens_per_step

            is_last = c.phase_step >= s.total_steps
            if c.phase_step % s.log_every == 0 or is_last or c.phase_step == 1:
                elapsed = max(1e-9, time.monotonic() - window_start)
                record = {"step": c.global_step, "phase_step": c.phase_step, "loss": stats["loss"],
                          "lr": stats["lr"], "tokens": c.global_tokens,
                          "tokens_per_s": window_tokens / elapsed, "grad_norm": stats["grad_norm"],
                          "epoch": self.data.epoch, "elapsed_s": round(c.train_time_s, 3),
                          **{k: v for k, v in stats.items() if k not in ("loss", "lr", "grad_norm", "stop", "save")}}
                if self.metrics is not None:
                    self.metrics.write(record)
                self.progress.update(c.phase_step, record, log_line=True)
                self.last_rate = record["tokens_per_s"]
                window_start, window_tokens = time.monotonic(), 0
            else:
                self.progress.update(c.phase_step, {**stats, "tokens": c.global_tokens,
                                                    "tokens_per_s": self.last_rate}, log_line=False)
            if not math.isfinite(stats["loss"]):
                self.log(f"step {c.global_step}: non-finite loss {stats['loss']}")

            if stats["stop"] and not is_last:
                reason = self.stop.reason() or "another rank asked to stop"
                self.log(f"stopping early at step {c.global_step}: {reason}; saving (no export, D-25)")
                # a refused save (non-finite weights) must not look like a clean, resumable slice
                return Outcome.STOPPED if self.save() else Outcome.FAILED
            if stats["save"] and not is_last:
                self.save()
            if s.val_every and c.phase_step % s.val_every == 0 and not is_last:
                self.validate()
            if self.on_probe is not None and s.probe_every and c.phase_step % s.probe_every == 0 and not is_last:
                self.on_probe(c.global_step, "during")

        if self.val_data is not None:
            self.validate()
        if self.last_saved_step == c.global_step:
            return Outcome.COMPLETED
        return Outcome.COMPLETED if self.save(final=True) else Outcome.FAILED

    def step(self, batches: Iterator[dict[str, torch.Tensor]]) -> dict[str, float]:
        """One optimizer step; returns host floats (one device→host copy)."""
        s, strategy, model = self.s, self.strategy, self.model
        lr = s.peak_lr * self.schedule.factor(self.counters.phase_step, s.total_steps)
        set_lr(self.optimizer, lr)
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
            with (contextlib.nullcontext() if sync else strategy.no_sync(model)):
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

        # Stop/save decisions are made on the main rank and must reach EVERY rank: all_reduce_sum
        # only spans the data-parallel group (a dp×tp mesh has several), so they take a global max.
        flags = torch.tensor([self._stop_requested(), self._save_due()], dtype=torch.float32, device=self.device)
        strategy.all_reduce_max(flags)
        sum_keys, total_keys = sorted(metric_sums), sorted(metric_totals)
        reduced = torch.cat([loss_sum.view(1), *(metric_sums[k].float().view(1) for k in sum_keys),
                             *(metric_totals[k].float().view(1) for k in total_keys)])
        strategy.all_reduce_sum(reduced)
        reduced = torch.cat([reduced, flags])
        host = torch.cat([reduced, grad_norm.detach().float().view(1).to(self.device),
                          units.float().view(1)]).tolist()  # the one host sync of the step
        units_host = max(host[-1], 1.0)
        out = {"loss": host[0] / units_host, "lr": lr, "grad_norm": host[-2], "units": int(host[-1])}
        for i, key in enumerate(sum_keys):
            out[key] = host[1 + i] / units_host
        for i, key in enumerate(total_keys):
            out[key] = host[1 + len(sum_keys) + i]
        out["stop"] = host[-4] > 0
        out["save"] = host[-3] > 0
        return out

    def _stop_requested(self) -> float:
        return 1.0 if self.strategy.is_main and self.stop.reason() else 0.0

    def _save_due(self) -> float:
        s, step = self.s, self.counters.global_step + 1  # the step being finished
        if s.interval_steps and step % s.interval_steps == 0:
            return 1.0
        if s.interval_s and self.strategy.is_main and time.monotonic() - self.last_save_time >= s.interval_s:
            return 1.0
        return 0.0

    def _next_batch(self, batches: Iterator[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The next CPU batch, finished by the objective (e.g. precomputed reference scores),
        on the device."""
        return to_device(self.objective.prepare_batch(next(batches)), self.device)

    # -- checkpoints and validation ------------------------------------------------------------
    def save(self, *, final: bool = False) -> bool:
        """Save through the manager's gates; True when the checkpoint verified. ``final``: the
        end of the budget (the run samples once more after export, so no sample here)."""
        c = self.counters
        path = self.checkpoints.save(self.model, self.optimizer, c.global_step, c.global_tokens,
                                     self.trainer_state(), self.s.recipe_toml)
        self.last_save_time = time.monotonic()
        if path is None:
            return False
        self.last_saved_step = c.global_step
        self.progress.message(f"checkpoint: saved {path}")
        if self.metrics is not None:
            self.metrics.write({"step": c.global_step, "event": "checkpoint", "path": str(path)})
        if self.on_checkpoint is not None and not final:
            self.on_checkpoint(c.global_step)
        return True

    @torch.no_grad()
    def validate(self) -> float | None:
        """Mean objective over ``val_batches`` micro-batches from the start of the held-out
        source; every rank takes part (no rank-0-only collective, D-15)."""
        if self.val_data is None:
            return None
        self.val_data.load_state_dict(self.val_start)
        batches = iter(self.val_data)
        self.model.eval()
        total = torch.zeros(2, device=self.device, dtype=torch.float64)
        try:
            for _ in range(self.s.val_batches):
                batch = self._next_batch(batches)
                with autocast_context(self.s.precision, self.device):
                    out = self.objective(self.model, batch)
                total[0] += out.loss_sum.detach().double()
                total[1] += self.objective.units(batch).double()
        finally:
            self.model.train()
        self.strategy.all_reduce_sum(total)
        sums = total.tolist()
        val_loss = sums[0] / max(sums[1], 1.0)
        self.progress.message(f"validation at step {self.counters.global_step}: val_loss {val_loss:.4f}")
        if self.metrics is not None:
            self.metrics.write({"step": self.counters.global_step, "val_loss": val_loss})
        return val_loss


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A batch's tensors on ``device`` (the CPU batch itself on CPU)."""
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _accumulate(into: dict[str, torch.Tensor], values: dict[str, torch.Tensor]) -> None:
    for key, value in values.items():
        value = value.detach().float()
        into[key] = into[key] + value if key in into else value
