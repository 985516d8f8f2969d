"""What all built-in strategies share: device choice, the fixed wrapping order, clipping,
checkpoint formats, and (for the distributed ones) the process group.

The order in which a model is prepared lives in one place, :meth:`Strategy.wrap`:
tensor parallel → activation checkpointing → compile → data parallel (FSDP/DDP) — the order
torchtitan uses, because TP must see the plain modules, checkpointing and compilation must see the
TP modules, and FSDP must wrap the final blocks.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from argonne_kit.contracts.parallel import ParallelStrategy, WrapOptions
from argonne_kit.errors import RecipeError

from . import checkpoint
from .gradnorm import clip_global_grad_norm
from .transforms import apply_block_transforms


def pick_device(device: str, local_rank: int) -> torch.device:
    """``train.device`` → the device of this process (``cuda:<local rank>`` on GPU)."""
    if device not in ("auto", "cpu", "cuda"):
        raise RecipeError(f"train.device: expected auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RecipeError("train.device: cuda was asked for but no CUDA device is available")
    if device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    index = local_rank % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


class Strategy(ParallelStrategy):
    """Base of the built-in strategies. Subclasses override the two layout steps
    (:meth:`apply_tensor_parallel`, :meth:`apply_data_parallel`) and the checkpoint format."""

    #: Registered name, written into checkpoints.
    name = ""
    #: ``torch``: full state written by the main rank; ``dcp``: every rank writes its shards.
    checkpoint_format = "torch"

    def __init__(self, config: Any):
        self.config = config

    # -- preparation ---------------------------------------------------------------------------
    def wrap(self, model: torch.nn.Module, options: WrapOptions) -> torch.nn.Module:
        model = model.to(self.device)
        self.apply_tensor_parallel(model)
        apply_block_transforms(model, options)
        return self.apply_data_parallel(model, options)

    def apply_tensor_parallel(self, model: torch.nn.Module) -> None:
        """Shard the linear layers over the tensor-parallel mesh (in place); default none."""

    def apply_data_parallel(self, model: torch.nn.Module, options: WrapOptions) -> torch.nn.Module:
        """Replicate or shard over the data-parallel ranks; default: the model as it is."""
        return model

    # -- training helpers ----------------------------------------------------------------------
    def clip_grad_norm(self, model: torch.nn.Module, max_norm: float | None) -> torch.Tensor:
        return clip_global_grad_norm(model.parameters(), max_norm, self.device)

    # -- checkpoints ---------------------------------------------------------------------------
    def mesh_shape(self) -> dict[str, int]:
        """The layout recorded in ``parallel.json``."""
        return {"dp": self.dp_world}

    def state_dicts(self, model, optimizer):
        return checkpoint.native_state(model, optimizer)

    def save(self, state: dict[str, Any], path: str) -> None:
        checkpoint.save(state, path, fmt=self.checkpoint_format, strategy=self.name, mesh=self.mesh_shape())

    def load(self, model, optimizer, path: str) -> dict[str, Any]:
        return checkpoint.load(model, optimizer, path)

    def full_model_state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        return checkpoint.full_model_state_dict(model)


class DistributedStrategy(Strategy):
    """A strategy with a process group. Launched by ``torchrun`` (``RANK``/``WORLD_SIZE`` in the
    environment); started as a plain process it runs as a world of one.

    Its config has ``backend`` (auto | nccl | gloo) and ``timeout_s`` (collective timeout: a dead
    or hung rank makes the others fail after at most this long instead of waiting forever).
    """

    def __init__(self, config: Any):
        super().__init__(config)
        self._owns_group = False

    def setup(self, device: str = "auto") -> None:
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.device = pick_device(device, local_rank)
        if not dist.is_initialized():
            self._init_process_group()
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.setup_mesh()

    def _init_process_group(self) -> None:
        backend = self.config.backend
        if backend == "auto":
            backend = "nccl" if self.device.type == "cuda" else "gloo"
        if backend == "nccl" and self.device.type != "cuda":
            raise RecipeError("parallel.backend: nccl needs CUDA devices; use gloo (or auto) on CPU")
        timeout = timedelta(seconds=self.config.timeout_s)
        kwargs: dict[str, Any] = {"backend": backend, "timeout": timeout}
        if self.device.type == "cuda":
            kwargs["device_id"] = self.device
        if "RANK" not in os.environ:
            # Not under torchrun: a process group of one, so the same code path runs.
            kwargs.update(store=dist.HashStore(), rank=0, world_size=1)
        dist.init_process_group(**kwargs)
        self._owns_group = True

    def setup_mesh(self) -> None:
        """Build the device mesh and set the data-parallel coordinates (default: all ranks are
        data-parallel replicas)."""
        self.dp_rank, self.dp_world = self.rank, self.world_size

    @property
    def dp_group(self):
        """The process group over which data-parallel metrics are summed."""
        return None

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self.dp_group)
        return tensor

    def all_reduce_max(self, tensor: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor

    def broadcast_object(self, obj: Any) -> Any:
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        dist.barrier()

    def teardown(self) -> None:
        """Barrier, then destroy the process group, then flush (destroying without the
        barrier makes gloo abort at interpreter exit now and then). A launcher that
        must exit 0 reliably under gloo ends the process with ``os._exit`` afterwards."""
        if self._owns_group and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
            self._owns_group = False
        sys.stdout.flush()
        sys.stderr.flush()
