"""``tp``: tensor parallel (DTensor ``parallelize_module``), optionally × FSDP on a 2-D mesh.

Per block, Megatron-style: ``q/k/v_proj`` and ``gate/up_proj`` column-parallel (each rank holds
whole heads / a slice of the MLP width), ``o_proj`` and ``down_proj`` row-parallel (their partial
outputs are summed). DTensor's autograd-aware redistributions are the conjugate f/g operators the
original's hand-written version lacked (D-17): the gradient entering each column-parallel layer
is summed over TP ranks, so embeddings, norms and everything upstream get full gradients.

The per-head QK-norm weights are shared by all heads but each rank sees only its own heads, so
their gradient would be a partial sum and replicas would drift. They are
parallelised with ``SequenceParallel`` on the head dimension: the weight becomes a replicated
DTensor whose gradient is all-reduced.

With ``world_size > degree`` the ranks form a ``dp × tp`` mesh: TP inside each row, FSDP2 over the
``dp`` dimension. TP ranks of one row see the same batch (``dp_rank`` is the row).
"""

from __future__ import annotations

import contextlib

import torch
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    RowwiseParallel,
    SequenceParallel,
    parallelize_module,
)

from argonne_kit.contracts.parallel import WrapOptions
from argonne_kit.errors import RecipeError

from .base import DistributedStrategy
from .fsdp import fsdp_no_sync, shard_model
from .transforms import find_blocks

COLUMN_PARALLEL = ("attn.q_proj", "attn.k_proj", "attn.v_proj", "mlp.gate_proj", "mlp.up_proj")
ROW_PARALLEL = ("attn.o_proj", "mlp.down_proj")
#: Norms applied per head (weight of size head_dim) inside the attention.
HEAD_NORMS = ("attn.q_norm", "attn.k_norm", "attn.v_norm_layer")


def require_divisible(what: str, value: int, degree: int) -> None:
    """Refuse a tensor-parallel degree that does not divide a sharded dimension."""
    if value % degree:
        raise RecipeError(f"parallel.degree: tensor-parallel degree {degree} does not divide {what} ({value})")


def check_tp_shapes(model: torch.nn.Module, degree: int) -> None:
    """Refuse a degree that does not split the heads and MLP evenly, and head norms that are not
    per head (clear error before any sharding)."""
    config = getattr(model, "config", None)
    heads = getattr(config, "num_attention_heads", None)
    if heads is None:
        raise RecipeError("parallel.kind: tp needs a model with config.num_attention_heads")
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    require_divisible("num_attention_heads", heads, degree)
    require_divisible("num_key_value_heads", kv_heads, degree)
    block = find_blocks(model)[0]
    gate = block.get_submodule("mlp.gate_proj")
    assert isinstance(gate, torch.nn.Linear)  # the MLP's projections are the Linear layers TP shards
    require_divisible("the MLP width", gate.out_features, degree)
    head_dim = block.get_submodule("attn.q_proj").out_features // heads
    for name in HEAD_NORMS:
        norm = _maybe_submodule(block, name)
        weight = getattr(norm, "weight", None)
        if weight is not None and weight.numel() != head_dim:
            raise RecipeError(
                f"parallel.kind: tp cannot shard this model: {name} has {weight.numel()} weights, "
                f"not one per head dimension ({head_dim}); a norm over the full width cannot be "
                "applied to TP-local heads"
            )


def _maybe_submodule(module: torch.nn.Module, name: str) -> torch.nn.Module | None:
    try:
        return module.get_submodule(name)
    except AttributeError:
        return None


def block_plan(block: torch.nn.Module) -> dict:
    """The parallelize plan of one block (only the head norms the block actually has)."""
    plan: dict = {name: ColwiseParallel() for name in COLUMN_PARALLEL}
    plan.update({name: RowwiseParallel() for name in ROW_PARALLEL})
    for name in HEAD_NORMS:
        norm = _maybe_submodule(block, name)
        if norm is not None and any(True for _ in norm.parameters()):
            # Any non-feature dim may be declared sharded: the weight gradient sums over all of
            # them, so the partial sums of the local heads are all-reduced (P4).
            plan[name] = SequenceParallel(sequence_dim=1, use_local_output=True)
    return plan


#: Attention attributes that count heads; a model that reshapes with them (rather than
#: ``view(B, T, -1, head_dim)``) must see the local counts under TP.
HEAD_COUNT_ATTRIBUTES = ("num_heads", "num_kv_heads", "num_key_value_heads")


def localise_head_counts(attn: torch.nn.Module, degree: int) -> None:
    """Divide the attention module's head-count attributes by the degree (each rank computes
    its own heads; the original's TP rewrote the same attributes, original.md §4)."""
    for name in HEAD_COUNT_ATTRIBUTES:
        value = getattr(attn, name, None)
        if isinstance(value, int):
            setattr(attn, name, value // degree)


class TPStrategy(DistributedStrategy):
    """Tensor parallel within rows of the mesh, FSDP2 across rows."""

    name = "tp"
    checkpoint_format = "dcp"

    def setup_mesh(self) -> None:
        degree = self.config.degree or self.world_size
        if self.world_size % degree:
            raise RecipeError(
                f"parallel.degree: {degree} does not divide the {self.world_size} "
                "processes; launch a multiple of the degree"
            )
        self.tp_degree = degree
        self.mesh = init_device_mesh(self.device.type, (self.world_size // degree, degree), mesh_dim_names=("dp", "tp"))
        self.dp_world = self.world_size // degree
        self.dp_rank = self.mesh.get_local_rank("dp")

    @property
    def dp_group(self):
        return self.mesh.get_group("dp")

    def mesh_shape(self) -> dict[str, int]:
        return {"dp": self.dp_world, "tp": self.tp_degree}

    def apply_tensor_parallel(self, model: torch.nn.Module) -> None:
        check_tp_shapes(model, self.tp_degree)
        tp_mesh = self.mesh["tp"]
        for block in find_blocks(model):
            parallelize_module(block, tp_mesh, block_plan(block))
            localise_head_counts(block.get_submodule("attn"), self.tp_degree)

    def apply_data_parallel(self, model: torch.nn.Module, options: WrapOptions) -> torch.nn.Module:
        if self.dp_world > 1:
            shard_model(model, self.mesh["dp"], self.config, options)
        return model

    def no_sync(self, model: torch.nn.Module):
        # TP reductions are part of the maths of each step; only the dp reduction can wait.
        if self.dp_world > 1:
            return fsdp_no_sync(model)
        return contextlib.nullcontext()
