"""Measured peak tensor memory of a training step on any device, CPU included.

``torch.cuda.max_memory_allocated`` only exists on CUDA. :class:`LiveTensorBytes` counts what
the CUDA caching allocator would be asked for, on every device: it is a ``TorchDispatchMode``
that sees every tensor an operator returns (forward, backward, recomputation, optimizer), adds
the bytes of each storage the first time it appears and subtracts them when the storage is
freed (a weak-reference callback). Storages that exist before the mode is entered (parameters,
optimizer state, the batch) are registered with :meth:`track`. Scratch buffers that an operator
allocates and frees inside one kernel are not seen; the step's peak is never inside one of those
for the shapes the planner is checked on.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary


class LiveTensorBytes(TorchDispatchMode):
    """Live and peak bytes of tensor storages (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._sizes: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self._refs: list[weakref.ref] = []
        self.live = 0
        self.peak = 0

    def track(self, tensors: Iterable[torch.Tensor]) -> None:
        """Count storages created before the mode was entered (parameters, gradients, state)."""
        for tensor in tensors:
            self._add(tensor)
        self.peak = max(self.peak, self.live)

    def reset_peak(self) -> None:
        """Start a new peak from the current live bytes."""
        self.peak = self.live

    def _add(self, tensor: torch.Tensor) -> None:
        if not isinstance(tensor, torch.Tensor) or tensor.device.type == "meta":
            return
        storage = tensor.untyped_storage()
        if storage in self._sizes:
            return
        size = storage.nbytes()
        self._sizes[storage] = size
        self.live += size
        self._refs.append(weakref.ref(storage, lambda _ref: self._free(size)))

    def _free(self, size: int) -> None:
        self.live -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_flatten(out)[0]:
            if isinstance(leaf, torch.Tensor):
                self._add(leaf)
        self.peak = max(self.peak, self.live)
        return out


def state_tensors(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> list[torch.Tensor]:
    """Parameters, their gradients and the optimizer state tensors of a training setup."""
    tensors = [p for p in model.parameters()] + [p.grad for p in model.parameters() if p.grad is not None]
    if optimizer is not None:
        for state in optimizer.state.values():
            tensors.extend(v for v in state.values() if isinstance(v, torch.Tensor))
    return tensors
