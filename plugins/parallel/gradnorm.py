"""Global gradient-norm clipping over replicated, sharded (FSDP) and tensor-parallel gradients.

Every rank adds the squares of its local gradient elements, each divided by the number of ranks
holding an identical copy of them, and one all-reduce sums the result:

- a plain gradient is the same on every rank (DDP after its all-reduce, or a parameter that TP
  leaves replicated): ``world_size`` copies;
- a DTensor gradient has one copy per replicated mesh dimension's size, times the number of
  times its mesh fits in the world (a parameter sharded by FSDP over the ``dp`` sub-mesh of a
  ``dp × tp`` mesh is identical on every TP rank).

One collective per step, the same value on every rank, whatever mix of layouts the model has.
Gradients that DTensor left *partial* (the tensor-parallel QK-norm weights: each rank holds the
sum over its own heads) are reduced first, in place, so the optimizer sees finished gradients.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor, Replicate


def _finish_partial(param: torch.nn.Parameter) -> None:
    grad = param.grad
    if isinstance(grad, DTensor) and any(p.is_partial() for p in grad.placements):
        placements = [Replicate() if p.is_partial() else p for p in grad.placements]
        param.grad = grad.redistribute(grad.device_mesh, placements)


def _copies(grad: torch.Tensor, world: int) -> int:
    """How many ranks hold exactly this local gradient."""
    if not isinstance(grad, DTensor):
        return world
    mesh = grad.device_mesh
    replicated = math.prod(mesh.size(d) for d, p in enumerate(grad.placements) if p.is_replicate())
    return replicated * (world // mesh.size())


def _layout(grad: torch.Tensor):
    if isinstance(grad, DTensor):
        return (grad.device_mesh, tuple(grad.placements))
    return None


def clip_global_grad_norm(parameters, max_norm: float | None, device: torch.device) -> torch.Tensor:
    """The 2-norm of all gradients of ``parameters`` taken together (a 0-d fp32 tensor on
    ``device``, equal on every rank); gradients are scaled in place to ``max_norm`` when given."""
    params = [p for p in parameters if p.grad is not None]
    for param in params:
        _finish_partial(param)
    world = dist.get_world_size() if dist.is_initialized() else 1
    locals_, weights = [], []
    for param in params:
        grad = param.grad
        local = grad.to_local() if isinstance(grad, DTensor) else grad
        if local.numel():
            locals_.append(local.float())
            weights.append(1.0 / _copies(grad, world))
    total_sq = torch.zeros((), dtype=torch.float32, device=device)
    if locals_:
        norms = torch.stack(torch._foreach_norm(locals_)).to(device)
        total_sq = total_sq + (norms.pow(2) * torch.tensor(weights, device=device)).sum()
    if dist.is_initialized():
        dist.all_reduce(total_sq)
    total = total_sq.sqrt()
    if max_norm is not None:
        # foreach kernels refuse lists that mix plain tensors and DTensors (or meshes): scale
        # each layout group separately.
        groups: dict = {}
        for param in params:
            groups.setdefault(_layout(param.grad), []).append(param)
        for group in groups.values():
            torch.nn.utils.clip_grads_with_norm_(group, max_norm, total)
    return total
