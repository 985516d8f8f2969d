"""``ddp``: data parallel with replicated weights (``DistributedDataParallel``).

Gradients are averaged over ranks (DDP's all-reduce; the trainer scales the loss by
``dp_world``, see the parallel contract). The model is checkpointed as one full ``torch.save`` file
by rank 0.
"""

from __future__ import annotations

import torch
from torch.nn.parallel import DistributedDataParallel

from argonne_kit.contracts.parallel import WrapOptions

from .base import DistributedStrategy


class DDPStrategy(DistributedStrategy):
    """One full replica per process; ``no_sync`` skips the all-reduce on accumulation steps."""

    name = "ddp"

    def apply_data_parallel(self, model: torch.nn.Module, options: WrapOptions) -> torch.nn.Module:
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(
            model,
            device_ids=device_ids,
            bucket_cap_mb=self.config.bucket_cap_mb,
            find_unused_parameters=self.config.find_unused_parameters,
        )

    def no_sync(self, model: torch.nn.Module):
        assert isinstance(model, DistributedDataParallel)  # the model wrap returned
        return model.no_sync()
