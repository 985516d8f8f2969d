"""The trainer callbacks a run assembles (:mod:`argonne_kit.contracts.trainer`): everything
the loop does besides optimizer steps and saves."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from argonne_kit.contracts.data import DataSource
from argonne_kit.contracts.trainer import TrainerCallback
from argonne_kit.train.metrics import MetricsLog, Progress
from argonne_kit.train.stop import StopConditions
from argonne_kit.train.trainer import Outcome, Trainer

#: Keys of a step's stats that are not metrics (the reduced stop/save requests).
_REQUEST_KEYS = ("stop", "save")


class StopOnSignalsAndTime(TrainerCallback):
    """Asks the trainer to save and stop on SIGTERM/SIGUSR1/SIGINT, wall time or a deadline
    (decided on the main rank; the trainer reduces the request over ranks)."""

    def __init__(self, conditions: StopConditions):
        self.conditions = conditions

    def pre_train(self, trainer: Trainer) -> None:
        self.conditions.install()

    def pre_reduce(self, trainer: Trainer) -> None:
        if trainer.strategy.is_main:
            reason = self.conditions.reason()
            if reason:
                trainer.request_stop(reason)

    def post_train(self, trainer: Trainer, outcome: Outcome | None) -> None:
        self.conditions.uninstall()


class CheckpointTriggers(TrainerCallback):
    """Asks for a checkpoint every ``interval_steps`` optimizer steps (cumulative step count)
    and/or ``interval_s`` seconds since the last save (main rank's clock)."""

    def __init__(self, interval_steps: int | None, interval_s: float | None):
        self.interval_steps = interval_steps
        self.interval_s = interval_s

    def pre_reduce(self, trainer: Trainer) -> None:
        step = trainer.counters.global_step + 1  # the step being finished
        if (self.interval_steps and step % self.interval_steps == 0) or (
            self.interval_s
            and trainer.strategy.is_main
            and time.monotonic() - trainer.last_save_time >= self.interval_s
        ):
            trainer.request_save()


class MetricsAndProgress(TrainerCallback):
    """``metrics.jsonl`` (+ TensorBoard) and the console progress, main rank only. The metrics
    file opens in ``pre_train``: after a resume dropped the records of re-trained steps."""

    def __init__(
        self,
        run_dir: Path,
        *,
        tensorboard: bool,
        progress: str,
        log_every: int,
        is_main: bool,
        log: Callable[[str], None],
    ):
        self.run_dir, self.tensorboard, self.progress_mode = run_dir, tensorboard, progress
        self.log_every, self.is_main, self.log = log_every, is_main, log
        self.metrics: MetricsLog | None = None
        self.progress: Progress | None = None
        self.last_rate = 0.0  # tokens/s of the last logged window (for the progress bar)
        self.window_start, self.window_tokens = time.monotonic(), 0

    def pre_train(self, trainer: Trainer) -> None:
        step = trainer.counters.phase_step
        self.progress = Progress(self.progress_mode, trainer.s.total_steps, step, enabled=self.is_main)
        if self.is_main:
            self.metrics = MetricsLog(self.run_dir, tensorboard=self.tensorboard, log=self.log)
        self.window_start, self.window_tokens = time.monotonic(), 0

    def write(self, record: dict[str, Any]) -> None:
        if self.metrics is not None:
            self.metrics.write(record)

    def message(self, text: str) -> None:
        if self.progress is not None:
            self.progress.message(text)

    def post_batch(self, trainer: Trainer, stats: dict[str, Any]) -> None:
        assert self.progress is not None
        c = trainer.counters
        self.window_tokens += trainer.s.tokens_per_step
        if c.phase_step % self.log_every == 0 or trainer.is_last_step or c.phase_step == 1:
            elapsed = max(1e-9, time.monotonic() - self.window_start)
            record = {
                "step": c.global_step,
                "phase_step": c.phase_step,
                "loss": stats["loss"],
                "lr": stats["lr"],
                "tokens": c.global_tokens,
                "tokens_per_s": self.window_tokens / elapsed,
                "grad_norm": stats["grad_norm"],
                "epoch": trainer.data.epoch,
                "elapsed_s": round(c.train_time_s, 3),
                **{k: v for k, v in stats.items() if k not in ("loss", "lr", "grad_norm", *_REQUEST_KEYS)},
            }
            self.write(record)
            self.progress.update(c.phase_step, record, log_line=True)
            self.last_rate = record["tokens_per_s"]
            self.window_start, self.window_tokens = time.monotonic(), 0
        else:
            self.progress.update(
                c.phase_step, {**stats, "tokens": c.global_tokens, "tokens_per_s": self.last_rate}, log_line=False
            )

    def post_checkpoint(self, trainer: Trainer, path: Path, *, final: bool) -> None:
        self.message(f"checkpoint: saved {path}")
        self.write({"step": trainer.counters.global_step, "event": "checkpoint", "path": str(path)})

    def post_train(self, trainer: Trainer, outcome: Outcome | None) -> None:
        if self.progress is not None:
            self.progress.close()
        if self.metrics is not None:
            self.metrics.close()


class Validation(TrainerCallback):
    """Mean objective over ``batches`` micro-batches from the start of the held-out source,
    every ``every`` phase steps (None = never) and after the last step."""

    def __init__(self, source: DataSource, *, batches: int, every: int | None, report: MetricsAndProgress):
        self.source, self.batches, self.every, self.report = source, batches, every, report
        self.start = source.state_dict()  # before anything (a reference precomputation) reads it

    def post_step(self, trainer: Trainer) -> None:
        phase_step = trainer.counters.phase_step
        if trainer.is_last_step or (self.every and phase_step % self.every == 0):
            self.source.load_state_dict(self.start)
            val_loss = trainer.evaluate(self.source, self.batches)
            step = trainer.counters.global_step
            self.report.message(f"validation at step {step}: val_loss {val_loss:.4f}")
            self.report.write({"step": step, "val_loss": val_loss})


class DivergenceStop(TrainerCallback):
    """Ends the run after ``max_failed_steps`` consecutive failed steps: a non-finite loss or
    gradient norm, or a gradient norm of exactly 0 with a loss above ``loss_ceiling`` (the loss
    of a uniform guess: saturated weights that no longer learn). Every later step would be
    wasted; nothing is saved (the weights are the failure), the last good checkpoint stays."""

    def __init__(self, max_failed_steps: int, loss_ceiling: float, log: Callable[[str], None]):
        self.max_failed_steps, self.loss_ceiling, self.log = max_failed_steps, loss_ceiling, log
        self.failed = 0

    def post_batch(self, trainer: Trainer, stats: dict[str, Any]) -> None:
        loss, grad_norm = stats["loss"], stats["grad_norm"]
        step = trainer.counters.global_step
        if not math.isfinite(loss) or not math.isfinite(grad_norm):
            self.log(f"step {step}: non-finite loss {loss} / grad_norm {grad_norm}")
        elif grad_norm == 0 and loss > self.loss_ceiling:
            self.log(
                f"step {step}: grad_norm 0 with loss {loss:.4g} above a uniform guess "
                f"({self.loss_ceiling:.4g}): the model no longer learns"
            )
        else:
            self.failed = 0
            return
        self.failed += 1
        if self.failed >= self.max_failed_steps:
            trainer.halt(f"{self.failed} consecutive failed steps")


class SampleAtCheckpoints(TrainerCallback):
    """A text sample after every verified checkpoint but the final one (the run samples once
    more after the export)."""

    def __init__(self, sample: Callable[[int], None]):
        self.sample = sample

    def post_checkpoint(self, trainer: Trainer, path: Path, *, final: bool) -> None:
        if not final:
            self.sample(trainer.counters.global_step)


class ChatProbeDuringTraining(TrainerCallback):
    """The chat quality probe before the first step of a phase and every ``every`` phase steps
    (the probe after training runs after the export)."""

    def __init__(self, probe: Callable[[int, str], None], every: int | None):
        self.probe, self.every = probe, every

    def pre_train(self, trainer: Trainer) -> None:
        if trainer.counters.phase_step == 0:
            self.probe(trainer.counters.global_step, "before")

    def post_step(self, trainer: Trainer) -> None:
        if self.every and trainer.counters.phase_step % self.every == 0 and not trainer.is_last_step:
            self.probe(trainer.counters.global_step, "during")


class ExportOnCompletion(TrainerCallback):
    """Calls ``export(trainer)`` after the loop when the budget completed and its final
    checkpoint verified — never after an early stop, a refused save or a divergence (D-25)."""

    def __init__(self, export: Callable[[Trainer], None]):
        self.export = export

    def post_train(self, trainer: Trainer, outcome: Outcome | None) -> None:
        if outcome is Outcome.COMPLETED:
            self.export(trainer)
