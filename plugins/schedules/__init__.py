"""Learning-rate schedules: ``constant``, ``wsd`` (warmup–stable–decay) and ``cosine``.

All are pure functions of the phase-local optimizer step (D-12). Warmup is linear from
1/warmup_steps (the original started at 0, wasting its first update) to 1. A decaying schedule
whose decay would never happen inside the run is refused at resolve time unless
``allow_no_decay = true`` (D-2, D-3: 2.5, 3.0 and a 4.0 stage ran flat at peak LR).
"""

from __future__ import annotations

import math
from typing import Literal

import attrs

from argonne_kit.contracts.config import ComponentConfig
from argonne_kit.contracts.schedule import LRSchedule
from argonne_kit.errors import RecipeError
from argonne_kit.registry import hookimpl


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warmup: (step+1)/W for step < W, then 1."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    return 1.0


@attrs.define(kw_only=True)
class ConstantConfig(ComponentConfig):
    """Constant LR after an optional linear warmup."""

    warmup_steps: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    """Linear warmup length in optimizer steps."""


class ConstantSchedule(LRSchedule):
    def __init__(self, cfg: ConstantConfig):
        self.cfg = cfg

    def factor(self, step: int, total_steps: int) -> float:
        return warmup_factor(step, self.cfg.warmup_steps)

    def landmarks(self, total_steps: int) -> dict[str, int]:
        return {"first": 0, "warmup_end": self.cfg.warmup_steps, "last": max(total_steps - 1, 0)}


@attrs.define(kw_only=True)
class WSDConfig(ComponentConfig):
    """Warmup, stable at peak, then a cooldown to ``min_lr_ratio`` at the end of the phase."""

    warmup_steps: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    """Linear warmup length in optimizer steps."""
    cooldown_frac: float | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.ge(0)))
    """Cooldown length as a fraction of the phase's steps (preferred: lands at the true end)."""
    cooldown_steps: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.ge(0)))
    """Cooldown length in steps (used when cooldown_frac is not given)."""
    decay_shape: Literal["linear", "1-sqrt"] = "linear"
    """Shape of the cooldown: linear, or 1-sqrt (f = 1 - sqrt(progress)·(1 - min_lr_ratio))."""
    min_lr_ratio: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))
    """LR at the end of the cooldown, as a fraction of the peak."""
    allow_no_decay: bool = False
    """Permit a WSD schedule whose cooldown is empty (otherwise refused, D-2)."""

    def resolve(self, resolved) -> None:
        if self.cooldown_frac is not None and self.cooldown_steps is not None:
            raise RecipeError("schedule: give cooldown_frac or cooldown_steps, not both")
        empty = not self.cooldown_frac and not self.cooldown_steps
        if empty and not self.allow_no_decay:
            raise RecipeError(
                "schedule: wsd with no cooldown never decays (min_lr_ratio would be dead; D-2/D-3); "
                "set cooldown_frac (e.g. 0.2) or cooldown_steps, or allow_no_decay = true to run flat on purpose"
            )


class WSDSchedule(LRSchedule):
    def __init__(self, cfg: WSDConfig):
        self.cfg = cfg

    def cooldown_steps(self, total_steps: int) -> int:
        if self.cfg.cooldown_frac:
            return int(self.cfg.cooldown_frac * total_steps)
        return self.cfg.cooldown_steps or 0

    def cooldown_start(self, total_steps: int) -> int:
        return max(self.cfg.warmup_steps, total_steps - self.cooldown_steps(total_steps))

    def factor(self, step: int, total_steps: int) -> float:
        cfg = self.cfg
        if step < cfg.warmup_steps:
            return warmup_factor(step, cfg.warmup_steps)
        length = self.cooldown_steps(total_steps)
        start = self.cooldown_start(total_steps)
        if length <= 0 or step < start:
            return 1.0
        # progress reaches 1 at the last step of the phase, so the last update uses min_lr_ratio.
        progress = min(1.0, (step - start + 1) / max(1, total_steps - start))
        if cfg.decay_shape == "1-sqrt":
            progress = math.sqrt(progress)
        return 1.0 - progress * (1.0 - cfg.min_lr_ratio)

    def decays(self, total_steps: int) -> bool:
        return self.cooldown_steps(total_steps) > 0 and self.cooldown_start(total_steps) < total_steps

    def requires_decay(self) -> bool:
        return self.cfg.min_lr_ratio < 1 and not self.cfg.allow_no_decay

    def landmarks(self, total_steps: int) -> dict[str, int]:
        return {
            "first": 0,
            "warmup_end": self.cfg.warmup_steps,
            "cooldown_start": self.cooldown_start(total_steps),
            "last": max(total_steps - 1, 0),
        }


@attrs.define(kw_only=True)
class CosineConfig(ComponentConfig):
    """Warmup then a half-cosine from peak to ``min_lr_ratio`` at the end of the phase."""

    warmup_steps: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    """Linear warmup length in optimizer steps."""
    min_lr_ratio: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))
    """LR at the last step, as a fraction of the peak."""


class CosineSchedule(LRSchedule):
    def __init__(self, cfg: CosineConfig):
        self.cfg = cfg

    def factor(self, step: int, total_steps: int) -> float:
        w = self.cfg.warmup_steps
        if step < w:
            return warmup_factor(step, w)
        span = max(1, total_steps - 1 - w)
        progress = min(1.0, (step - w) / span)
        r = self.cfg.min_lr_ratio
        return r + (1 - r) * 0.5 * (1 + math.cos(math.pi * progress))

    def decays(self, total_steps: int) -> bool:
        return total_steps - 1 > self.cfg.warmup_steps

    def requires_decay(self) -> bool:
        return self.cfg.min_lr_ratio < 1

    def landmarks(self, total_steps: int) -> dict[str, int]:
        return {"first": 0, "warmup_end": self.cfg.warmup_steps, "last": max(total_steps - 1, 0)}


@hookimpl
def argonne_kit_register_components(register):
    register("schedule", "constant", ConstantSchedule, ConstantConfig)
    register("schedule", "wsd", WSDSchedule, WSDConfig)
    register("schedule", "cosine", CosineSchedule, CosineConfig)
