"""When to stop early: wall time, an absolute deadline, SIGTERM, SIGUSR1 (SLURM's warning) or
SIGINT (Ctrl-C).

Every one of them means "save, then exit without exporting" (D-25): the budget is not done, a
resubmitted slice resumes from the checkpoint. The exit status is 0, except 130 after SIGINT (what
a shell reports for an interrupted command). The decision is made per optimizer step and reduced
over ranks by the trainer, so every rank stops at the same step. A second SIGINT is not caught:
it interrupts at once, without saving.

Schedulers signal the whole process group (``kill -- -PGID``); data-loader workers ignore these
signals (:func:`ignore_stop_signals`, their ``worker_init_fn``) so that only the main process
reacts, saves and exits.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from argonne_kit.recipe.sections import RunConfig

SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

#: a signal disposition as ``signal.signal`` returns it (a function, SIG_DFL/SIG_IGN, or None)
SignalHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def ignore_stop_signals(_worker_id: int = 0) -> None:
    """In a data-loader worker: leave the stop signals to the main process (which saves, then
    ends the workers itself)."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


class StopConditions:
    """Installs the signal handlers and answers :meth:`reason` (None = keep going)."""

    def __init__(self, cfg: RunConfig, start_time: float):
        self.cfg = cfg
        self.start = start_time
        self.signal_name: str | None = None
        self._previous: dict[signal.Signals, SignalHandler] = {}

    def install(self) -> None:
        for sig in SIGNALS:
            with contextlib.suppress(ValueError):  # not the main thread (e.g. inside a test harness)
                self._previous[sig] = signal.signal(sig, self._on_signal)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, signum, _frame) -> None:
        self.signal_name = signal.Signals(signum).name
        if signum == signal.SIGINT:  # a second Ctrl-C interrupts at once
            signal.signal(signal.SIGINT, signal.default_int_handler)

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
