"""When to stop early: wall time, an absolute deadline, SIGTERM or SIGUSR1 (SLURM's warning).

Every one of them means "save, then exit 0 without exporting" (D-25): the budget is not done, a
resubmitted slice resumes from the checkpoint. The decision is made per optimizer step and
reduced over ranks by the trainer, so every rank stops at the same step.
"""

from __future__ import annotations

import signal
import time

from argonne_kit.recipe.sections import RunConfig

SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None)) if s)


class StopConditions:
    """Installs the signal handlers and answers :meth:`reason` (None = keep going)."""

    def __init__(self, cfg: RunConfig, start_time: float):
        self.cfg = cfg
        self.start = start_time
        self.signal_name: str | None = None
        self._previous = {}

    def install(self) -> None:
        for sig in SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread (e.g. inside a test harness)
                pass

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, signum, _frame) -> None:
        self.signal_name = signal.Signals(signum).name

    def reason(self, now: float | None = None) -> str | None:
        now = time.time() if now is None else now
        if self.signal_name:
            return f"received {self.signal_name}"
        margin = self.cfg.exit_margin_s
        if self.cfg.wall_time_s is not None and now - self.start >= self.cfg.wall_time_s - margin:
            return f"wall time {self.cfg.wall_time_s:g} s (margin {margin:g} s) reached"
        if self.cfg.deadline_epoch is not None and now >= self.cfg.deadline_epoch - margin:
            return f"deadline {self.cfg.deadline_epoch:.0f} (margin {margin:g} s) reached"
        return None
