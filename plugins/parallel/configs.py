"""Config classes of the built-in strategies, importable without torch (registering the plugin and
resolving a recipe load only this module; each strategy's module loads when it is built)."""

from __future__ import annotations

from typing import Literal

import attrs

from argonne_kit.contracts.config import MemoryLayout, ParallelConfig
from argonne_kit.errors import RecipeError
from argonne_kit.recipe.validators import positive

#: attrs validator: None or a number > 0 (of int and float fields alike).


#: ``backend`` values of the distributed strategies' configs.
Backend = Literal["auto", "nccl", "gloo"]
#: Default collective timeout (seconds) of the distributed strategies' configs.
DEFAULT_TIMEOUT_S = 600.0


@attrs.define(kw_only=True)
class SingleConfig(ParallelConfig):
    """One process on one device (the device comes from ``train.device``); no settings."""

    def max_processes(self) -> int | None:
        return 1


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


@attrs.define(kw_only=True)
class FSDPConfig(ParallelConfig):
    """Parameters, gradients and optimizer state sharded over all ranks (FSDP2)."""

    backend: Backend = "auto"
    """Collective backend; auto = NCCL on CUDA, gloo on CPU."""
    timeout_s: float = attrs.field(default=DEFAULT_TIMEOUT_S, validator=positive)
    """Collective timeout in seconds: a dead or hung rank makes the others fail after this long."""
    reshard_after_forward: bool = True
    """Free the gathered parameters after each block's forward and gather them again in backward
    (FULL_SHARD); false keeps them until backward (SHARD_GRAD_OP, the original's default: more
    memory, less communication)."""
    reduce_dtype: Literal["fp32", "bf16"] = "fp32"
    """Dtype of the gradient reduce-scatter when parameters are cast for compute
    (``train.precision`` bf16/fp16 with ``mixed_precision``)."""
    mixed_precision: bool = False
    """Gather parameters in the compute dtype (``train.precision``) instead of casting inside
    autocast; master weights and optimizer state stay fp32."""

    def memory_layout(self, nproc: int) -> MemoryLayout:
        return MemoryLayout(parameter_shards=nproc)


@attrs.define(kw_only=True)
class TPConfig(ParallelConfig):
    """Tensor parallel over ``degree`` ranks; with more ranks, FSDP over the data-parallel
    dimension of a ``dp × tp`` mesh (the sharding settings apply to that dimension)."""

    degree: int | None = attrs.field(default=None, validator=positive)
    """Tensor-parallel degree (ranks that split each layer); None = all ranks (no data
    parallelism, the 2.0 layout of original.md §4). Must divide the attention heads, the KV heads, the
    MLP width and the number of processes."""
    backend: Backend = "auto"
    """Collective backend; auto = NCCL on CUDA, gloo on CPU."""
    timeout_s: float = attrs.field(default=DEFAULT_TIMEOUT_S, validator=positive)
    """Collective timeout in seconds: a dead or hung rank makes the others fail after this long."""
    reshard_after_forward: bool = True
    """dp × tp: free the gathered parameters after each block's forward (FULL_SHARD); false
    keeps them until backward (SHARD_GRAD_OP)."""
    reduce_dtype: Literal["fp32", "bf16"] = "fp32"
    """dp × tp: dtype of the gradient reduce-scatter under ``mixed_precision``."""
    mixed_precision: bool = False
    """dp × tp: gather parameters in the compute dtype (``train.precision``); master weights
    and optimizer state stay fp32."""

    def data_parallel_world(self, nproc: int) -> int:
        """Data-parallel ranks among ``nproc`` processes (the core's batch math counts these)."""
        return max(1, nproc // (self.degree or nproc))

    def memory_layout(self, nproc: int) -> MemoryLayout:
        degree = self.degree or nproc
        # dp × tp: FSDP shards over the data-parallel dimension
        return MemoryLayout(tensor_parallel=degree, parameter_shards=max(1, nproc // degree))

    def resolve(self, resolved) -> None:
        degree = self.degree or resolved.recipe.run.nproc
        if degree is None:
            return
        model = resolved.derived.get("model", {})
        for what in ("num_attention_heads", "num_key_value_heads", "intermediate_size"):
            value = model.get(what)
            if value is not None and value % degree:
                raise RecipeError(
                    f"parallel.degree: tensor-parallel degree {degree} does not divide model.{what} ({value})"
                )
        nproc = resolved.recipe.run.nproc
        if nproc is not None and nproc % degree:
            raise RecipeError(f"parallel.degree: {degree} does not divide run.nproc ({nproc})")
