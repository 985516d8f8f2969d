"""The trainer's own state: counters (global by construction, D-24) and RNG streams."""

from __future__ import annotations

import random
from typing import Any

import attrs
import numpy as np
import torch


@attrs.define
class Counters:
    """Where training stands. ``global_*`` accumulate across stages (a chained stage carries
    them); ``phase_*`` count from the start of this stage and drive its schedule (D-12).
    Tokens are tokens of the global batch (all ranks), never per rank (D-24)."""

    global_step: int = 0
    global_tokens: int = 0
    phase_step: int = 0
    phase_tokens: int = 0
    train_time_s: float = 0.0
    """Seconds spent training in this phase (summed over resumed slices)."""

    def advance(self, tokens: int) -> None:
        self.global_step += 1
        self.phase_step += 1
        self.global_tokens += tokens
        self.phase_tokens += tokens


def capture_rng() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
