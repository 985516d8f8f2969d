"""``ddp``: data parallel with replicated weights (``DistributedDataParallel``).

Gradients are **summed** over ranks by a communication hook (DDP's default averages): the trainer
already divides each rank's loss by the global token count, so the sum is the global mean's
gradient (see the parallel contract). The model is checkpointed as one full ``torch.save`` file by
rank 0.
"""

from __future__ import annotations

import attrs
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from argonne_kit.contracts.parallel import WrapOptions

from .base import DEFAULT_TIMEOUT_S, Backend, DistributedStrategy, _positive


@attrs.define(kw_only=True)
class DDPConfig:
    """Replicated weights, gradients all-reduced in buckets during backward."""

    backend: Backend = "auto"
    """Collective backend; auto = NCCL on CUDA, gloo on CPU."""
    timeout_s: float = attrs.field(default=DEFAULT_TIMEOUT_S, validator=_positive)
    """Collective timeout in seconds: a dead or hung rank makes the others fail after this long."""
    bucket_cap_mb: float = attrs.field(default=25.0, validator=_positive)
    """Gradient bucket size in MiB (larger = fewer, bigger all-reduces)."""
    find_unused_parameters: bool = False
    """Tolerate parameters that receive no gradient in a step (slower; off for language models)."""


def allreduce_sum_hook(process_group, bucket):
    """DDP communication hook: sum the bucket over ranks (no division by the world size)."""
    group = process_group if process_group is not None else dist.group.WORLD
    work = dist.all_reduce(bucket.buffer(), group=group, async_op=True)
    return work.get_future().then(lambda fut: fut.value()[0])


class DDPStrategy(DistributedStrategy):
    """One full replica per process; ``no_sync`` skips the all-reduce on accumulation steps."""

    name = "ddp"

    def apply_data_parallel(self, model: torch.nn.Module, options: WrapOptions) -> torch.nn.Module:
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        wrapped = DistributedDataParallel(model, device_ids=device_ids,
                                          bucket_cap_mb=self.config.bucket_cap_mb,
                                          find_unused_parameters=self.config.find_unused_parameters)
        wrapped.register_comm_hook(None, allreduce_sum_hook)
        return wrapped

    def no_sync(self, model: torch.nn.Module):
        return model.no_sync()
