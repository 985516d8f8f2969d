"""LR-schedule checks shared by the resolve step and the run (D-2, D-3).

A schedule configured to decay (its :meth:`~argonne_kit.contracts.schedule.LRSchedule.requires_decay`
is true, e.g. ``min_lr_ratio`` < 1 for the built-ins) that never leaves its peak within the phase is
refused: 2.5, 3.0 and a 4.0 stage ran flat at peak LR because a cooldown of 0 silently disabled the
decay. The wsd schedule accepts ``allow_no_decay = true`` to run flat on purpose.
"""

from __future__ import annotations

from argonne_kit.contracts.schedule import LRSchedule
from argonne_kit.errors import RecipeError


def check_schedule_decays(kind: str, schedule: LRSchedule, total_steps: int) -> None:
    """Refuse a schedule that is configured to decay but never does within ``total_steps``."""
    if schedule.requires_decay() and not schedule.decays(total_steps):
        landmarks = schedule.landmarks(total_steps)
        raise RecipeError(
            f"schedule: {kind} is configured to decay but never decays within the phase's "
            f"{total_steps:,} steps (landmarks {landmarks}); the LR would stay at its peak (D-2/D-3). "
            f"Shorten warmup / lengthen the cooldown, or run flat on purpose (wsd: "
            f"schedule.allow_no_decay = true)"
        )


def lr_landmarks(schedule: LRSchedule, total_steps: int, peak_lr: float) -> list[tuple[str, int, float]]:
    """``[(name, step, lr)]`` at the schedule's named steps (first, warmup end, cooldown start,
    last) that fall inside the phase, in step order."""
    marks = sorted(schedule.landmarks(total_steps).items(), key=lambda kv: kv[1])
    return [(name, step, peak_lr * schedule.factor(step, total_steps)) for name, step in marks if step < total_steps]
