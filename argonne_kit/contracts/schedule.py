"""Learning-rate schedule contract: a pure function of the phase-local step."""

from __future__ import annotations

from abc import ABC, abstractmethod


class LRSchedule(ABC):
    """Multiplier of the peak LR as a function of the optimizer step within the current phase.

    ``step`` counts optimizer steps from the start of the phase (D-12: a new stage gets a fresh
    schedule unless it explicitly inherits one); ``total_steps`` is the phase's length.
    """

    @abstractmethod
    def factor(self, step: int, total_steps: int) -> float:
        """LR multiplier in [0, 1] for the update made at ``step`` (0-based)."""

    def decays(self, total_steps: int) -> bool:
        """True when the multiplier drops below 1 after warmup within ``total_steps``."""
        return False

    def requires_decay(self) -> bool:
        """True when this schedule is configured to end below its peak LR. The core refuses a
        phase in which such a schedule never :meth:`decays` (D-2/D-3: a cooldown that never
        starts leaves the LR at its peak). Default: False (nothing to check)."""
        return False

    def landmarks(self, total_steps: int) -> dict[str, int]:
        """Named steps worth printing (first, warmup end, cooldown start, last)."""
        return {"first": 0, "last": max(total_steps - 1, 0)}
