"""``ddp``: data parallel with replicated weights (``DistributedDataParallel``).

Gradients are averaged over ranks (DDP's all-reduce; the trainer scales the loss by
``dp_world``, see the parallel contract). The model is checkpointed as one full ``torch.save`` file
by rank 0.
"""

from __future__ import annotations

import attrs
import torch
from torch.nn.parallel import DistributedDataParallel

from argonne_kit.contracts.config import MemoryLayout, ParallelConfig
from argonne_kit.contracts.parallel import WrapOptions

from .base import DEFAULT_TIMEOUT_S, Backend, DistributedStrategy, positive


@attrs.define(kw_only=True)
class DDPConfig(ParallelConfig):
    """Replicated weights, gradients all-reduced in buckets during backward."""

    backend: Backend = "auto"
    """Collective backend; auto = NCCL on CUDA, gloo on CPU."""
    timeout_s: float = attrs.field(default=DEFAULT_TIMEOUT_S, validator=positive)
    """Collective timeout in seconds: a dead or hung rank makes the others fail after this long."""
    bucket_cap_mb: float = attrs.field(default=25.0, validator=positive)
    """Gradient bucket size in MiB (larger = fewer, bigger all-reduces)."""
    find_unused_parameters: bool = False
    """Tolerate parameters that receive no gradient in a step (slower; off for language models)."""

    def memory_layout(self, nproc: int) -> MemoryLayout:
        return MemoryLayout(gradient_buckets=nproc > 1)


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
