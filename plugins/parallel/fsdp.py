"""``fsdp``: fully sharded data parallel (FSDP2 ``fully_shard``), one unit per block plus the root.

The root unit holds the embedding, final norm and LM head, so the tied embedding/head weight is
one sharded parameter and stays tied. Gradients are reduce-scattered as an
average over ranks (the parallel contract). Checkpoints are DCP directories written by
every rank: they reshard on load to any world size or layout (original.md §3.4, D-16).
"""

from __future__ import annotations

import contextlib

import torch
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from argonne_kit.contracts.parallel import PRECISION_DTYPES, WrapOptions

from .base import DistributedStrategy
from .transforms import find_blocks


def shard_model(model: torch.nn.Module, mesh: DeviceMesh, config, options: WrapOptions) -> None:
    """``fully_shard`` each block, then the root, over ``mesh`` (in place).
    ``config`` has the sharding fields of :class:`FSDPConfig` (``tp`` shares them)."""
    policy = MixedPrecisionPolicy()
    if config.mixed_precision and options.param_dtype is not None:
        policy = MixedPrecisionPolicy(
            param_dtype=options.param_dtype, reduce_dtype=PRECISION_DTYPES[config.reduce_dtype]
        )
    for block in find_blocks(model):
        fully_shard(block, mesh=mesh, reshard_after_forward=config.reshard_after_forward, mp_policy=policy)
    # The root's parameters are used first in backward (head) and last (embedding): keeping them
    # gathered after forward saves one all-gather per step.
    fully_shard(model, mesh=mesh, reshard_after_forward=False, mp_policy=policy)


@contextlib.contextmanager
def fsdp_no_sync(model: torch.nn.Module):
    """Accumulate unsharded gradients locally; the reduce-scatter happens on the last micro-step."""
    assert isinstance(model, FSDPModule)  # shard_model fully_shards the root
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


class FSDPStrategy(DistributedStrategy):
    """FSDP2 over a 1-D mesh of all ranks."""

    name = "fsdp"
    checkpoint_format = "dcp"

    def setup_mesh(self) -> None:
        super().setup_mesh()
        self.mesh = init_device_mesh(self.device.type, (self.world_size,), mesh_dim_names=("dp",))

    def apply_data_parallel(self, model: torch.nn.Module, options: WrapOptions) -> torch.nn.Module:
        shard_model(model, self.mesh, self.config, options)
        return model

    def no_sync(self, model: torch.nn.Module):
        return fsdp_no_sync(model)
