"""LR-schedule checks shared by the resolve step and the run (D-2, D-3).

A schedule configured to decay (it has ``min_lr_ratio`` < 1) that never leaves its peak within
the phase is refused unless its config says ``allow_no_decay = true``: 2.5, 3.0 and a 4.0 stage
ran flat at peak LR because a cooldown of 0 silently disabled the decay.
"""

from __future__ import annotations

from argonne_kit.errors import RecipeError


def check_schedule_decays(section, schedule, total_steps: int) -> None:
    cfg = section.config
    ratio = getattr(cfg, "min_lr_ratio", None)
    if ratio is None or ratio >= 1 or getattr(cfg, "allow_no_decay", False):
        return
    if not schedule.decays(total_steps):
        landmarks = schedule.landmarks(total_steps)
        raise RecipeError(
            f"schedule: {section.kind} with min_lr_ratio = {ratio} never decays within the phase's "
            f"{total_steps:,} steps (landmarks {landmarks}); the LR would stay at its peak (D-2/D-3). "
            f"Shorten warmup / lengthen the cooldown, or set schedule.allow_no_decay = true")


def lr_landmarks(schedule, total_steps: int, peak_lr: float) -> list[tuple[str, int, float]]:
    """``[(name, step, lr)]`` at the schedule's named steps (first, warmup end, cooldown start,
    last) that fall inside the phase, in step order."""
    marks = sorted(schedule.landmarks(total_steps).items(), key=lambda kv: kv[1])
    return [(name, step, peak_lr * schedule.factor(step, total_steps))
            for name, step in marks if step < total_steps]
