"""Parallel-strategy contract: distributed execution applied from outside the model.

The model holds no distributed code. A strategy sets up the process group and device mesh,
wraps/shards the model in one fixed order (tensor parallel → activation checkpointing → compile →
FSDP/DDP), provides no-sync for gradient accumulation, global grad-norm clipping, reductions, and a
checkpoint save/load that round-trips every shard (D-16) and can reshard across world sizes.

Gradient synchronisation **averages** over the ``dp_world`` data-parallel ranks (PyTorch's DDP/FSDP
default): the trainer scales each micro-batch's ``loss_sum`` by ``dp_world / global units`` (see the
objective contract), so the averaged gradient is exactly the gradient of the global-batch mean.
Tensor-parallel ranks of one data-parallel group compute one model together and are not averaged.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import attrs
import torch

#: Precision names (``train.precision``, a strategy's reduce dtype) → torch dtypes: the one map.
PRECISION_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@attrs.frozen
class WrapOptions:
    """How the trainer wants the model prepared (the strategy applies them in its fixed order)."""

    activation_checkpointing: bool = False
    """Recompute block activations in backward."""
    checkpoint_every: int = 1
    """Checkpoint every k-th block (1 = all blocks)."""
    compile: bool = False
    """``torch.compile`` the blocks/model."""
    compile_mode: str | None = None
    """``torch.compile`` mode (None = default)."""
    param_dtype: torch.dtype | None = None
    """Mixed-precision parameter dtype for sharded strategies (None = keep fp32)."""


class ParallelStrategy(ABC):
    """Where and how the model runs. One instance per process."""

    #: Global rank / world size of the process group (0 / 1 when single-process).
    rank: int = 0
    world_size: int = 1
    #: Data-parallel coordinates: ranks with the same ``dp_rank`` see the same batch.
    dp_rank: int = 0
    dp_world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on the process that writes logs, metrics and exports (global rank 0)."""
        return self.rank == 0

    @abstractmethod
    def setup(self, device: str = "auto") -> None:
        """Initialise the process group / mesh and pick the device (``train.device``: ``auto`` =
        CUDA when available, ``cpu`` or ``cuda``)."""

    @abstractmethod
    def wrap(self, model: torch.nn.Module, options: WrapOptions) -> torch.nn.Module:
        """Return the model ready for training (sharded/replicated/compiled)."""

    def unwrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The underlying model (for generation and export on the main rank)."""
        inner = getattr(model, "module", model)
        return getattr(inner, "_orig_mod", inner)

    def no_sync(self, model: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
        """Context that skips gradient synchronisation (all micro-steps but the last)."""
        return contextlib.nullcontext()

    @abstractmethod
    def clip_grad_norm(self, model: torch.nn.Module, max_norm: float | None) -> torch.Tensor:
        """Global gradient norm over every shard (clipped in place when ``max_norm``)."""

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum a tensor over data-parallel ranks, in place, and return it."""
        return tensor

    def all_reduce_max(self, tensor: torch.Tensor) -> torch.Tensor:
        """Max of a tensor over all ranks, in place, and return it."""
        return tensor

    def broadcast_object(self, obj: Any) -> Any:
        """The main rank's ``obj`` on every rank."""
        return obj

    def barrier(self) -> None:
        """Wait for every rank."""

    @abstractmethod
    def state_dicts(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """Model and optimizer state in this strategy's native (possibly sharded) form."""

    @abstractmethod
    def save(self, state: dict[str, Any], path: str) -> None:
        """Write ``state`` (from :meth:`state_dicts`, plus plain extras) under ``path``, in the
        formats the checkpoint manager reads back to verify a save (it counts every tensor and
        loads a sample): ``torch.save`` files (``.pt``/``.pth``/``.bin``), safetensors files, or
        ``torch.distributed.checkpoint`` directories."""

    @abstractmethod
    def load(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, path: str) -> dict[str, Any]:
        """Load a checkpoint written by any strategy/world size into this layout; return the
        plain extras."""

    @abstractmethod
    def full_model_state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The full, unsharded model state dict on the main rank's CPU (empty elsewhere)."""

    def teardown(self) -> None:
        """Barrier, then destroy the process group (without the barrier gloo can abort at exit)."""


#: Type of a registered parallel factory: ``factory(config) -> ParallelStrategy``.
ParallelFactory = Callable[[Any], ParallelStrategy]
