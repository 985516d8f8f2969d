"""Score the data with a frozen reference model once, before training, then let it go.

Objectives with a reference (DPO) may ask for this (``Objective.precomputes_reference``): the
reference then never sits in memory during the loop. The pass covers exactly the micro-batches
this rank will consume — ``planned`` training batches from the source's current position (after
a resume, the rest of the phase) and the validation batches — so every batch the loop sees was
scored, and nothing is exchanged between ranks.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import torch

from argonne_kit.contracts.data import DataSource
from argonne_kit.contracts.objective import Objective
from argonne_kit.contracts.parallel import ParallelStrategy
from argonne_kit.train.trainer import autocast_context, to_device


def precompute_reference(
    objective: Objective,
    reference: torch.nn.Module,
    strategy: ParallelStrategy,
    plan: list[tuple[DataSource, int]],
    precision: str,
    log: Callable[[str], None],
) -> None:
    """Show the reference ``count`` batches of each ``(source, count)`` in ``plan`` (then put each
    source back where it was). Every rank must call it with the same counts: a batch runs through
    the reference when any rank needs it, since a sharded reference's forward is collective."""
    start, passes, seen = time.monotonic(), 0, 0
    reference.eval()
    for source, count in plan:
        position = source.state_dict()
        batches = iter(source)
        for _ in range(count):
            batch = next(batches)
            seen += 1
            needed = torch.tensor([float(objective.reference_pass_needed(batch))], device=strategy.device)
            strategy.all_reduce_max(needed)
            if needed.item() == 0:
                continue
            with torch.no_grad(), autocast_context(precision, strategy.device):
                objective.record_reference_pass(reference, batch, to_device(batch, strategy.device))
            passes += 1
        del batches  # stops the source's worker processes before it is rewound
        source.load_state_dict(position)
    log(
        f"reference: scored {seen:,} micro-batches per rank in {time.monotonic() - start:.1f} s "
        f"({passes:,} reference passes; batches seen before are not scored twice); reference freed"
    )


def free_memory(device: torch.device) -> None:
    """Return the freed reference's memory (Python cycles first, then the CUDA cache)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
