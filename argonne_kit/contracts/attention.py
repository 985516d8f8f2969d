"""Attention backend contract.

A backend computes causal attention for ``q [B, Hq, T, d]`` and ``k, v [B, Hkv, S, d]`` (GQA:
``Hq`` is a multiple of ``Hkv``) under an explicit per-layer :class:`AttentionSpec`. It declares
what it can do in :class:`Capabilities` and refuses — with :class:`AttentionUnsupported` — any
spec or runtime it cannot honour exactly: it never silently drops a window (D-4) and never falls
back to another kernel on out-of-memory (D-15). The caller casts q/k/v to the compute dtype
before the call (D-27); backends do not promote or demote.

Masking semantics shared by every backend (``math`` is the reference):

- query ``t`` (0-based within this call) sits at absolute position ``query_offset + t``; key
  ``s`` sits at absolute position ``s``. With ``S == T`` and ``query_offset == 0`` this is
  ordinary training/prefill; cached decode has ``query_offset = S - T``.
- causal: key ``s`` is visible to query ``t`` iff ``s <= query_offset + t``;
- window ``w``: additionally ``query_offset + t - s <= w`` (query i sees keys i-w … i);
- ``key_padding_mask [B, S]`` (True = real token) hides padded keys;
- ``segment_ids [B, S]`` (packed documents) hides keys from another segment; the queries'
  segments are ``segment_ids[:, S - T:]``.
- A query row that can see no key at all (a padded query) returns zeros, never NaN.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch

from argonne_kit.errors import ArgonneError


class AttentionUnsupported(ArgonneError):
    """A backend cannot honour the requested spec/runtime; the message says which property."""


@dataclass(frozen=True)
class AttentionSpec:
    """What one layer's attention must compute."""

    causal: bool = True
    """Causal masking (decoder-only models always use True)."""
    window: int | None = None
    """Sliding window ``w``: query ``i`` sees keys ``i-w … i``. None = full causal attention."""
    scale: float | None = None
    """Softmax scale; None = ``1/sqrt(head_dim)``."""
    query_offset: int = 0
    """Absolute position of the first query among the keys (``S - T`` for cached decode)."""
    dropout: float = 0.0
    """Dropout probability on the attention probabilities. Non-zero only in training (the model
    passes 0 in eval and generation); the Argonne 1.x models use 0.1 (original.md §1.1)."""


@dataclass(frozen=True)
class Runtime:
    """The conditions a backend will run under (used for capability checks)."""

    device_type: str
    """``"cpu"`` or ``"cuda"``."""
    dtype: torch.dtype
    """Compute dtype of q/k/v after the explicit cast."""
    head_dim: int
    num_heads: int
    num_kv_heads: int
    needs_backward: bool
    """True when gradients will flow (training)."""
    padding_mask: bool = False
    """True when a key padding mask will be passed."""
    segments: bool = False
    """True when packed-document segment ids will be passed."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend supports. ``check`` turns these into a clear refusal."""

    dtypes: frozenset[torch.dtype] = frozenset({torch.float32, torch.bfloat16, torch.float16})
    devices: frozenset[str] = frozenset({"cpu", "cuda"})
    backward_devices: frozenset[str] = frozenset({"cpu", "cuda"})
    window: bool = True
    gqa: bool = True
    decode: bool = True
    padding_mask: bool = True
    segments: bool = True
    dropout: bool = True
    max_head_dim: int | None = None
    head_dim_multiple: int = 1

    def refusal(self, spec: AttentionSpec, rt: Runtime) -> str | None:
        """The reason this backend cannot run ``spec`` under ``rt``, or None if it can."""
        if rt.device_type not in self.devices:
            return f"device {rt.device_type!r} not supported (supports {sorted(self.devices)})"
        if rt.dtype not in self.dtypes:
            return f"dtype {rt.dtype} not supported (supports {sorted(str(d) for d in self.dtypes)})"
        if rt.needs_backward and rt.device_type not in self.backward_devices:
            return f"no backward on {rt.device_type!r}"
        if spec.window is not None and not self.window:
            return f"sliding window {spec.window} not supported"
        if rt.num_heads != rt.num_kv_heads and not self.gqa:
            return "grouped-query attention not supported"
        if spec.query_offset and not self.decode:
            return "cached decode (query_offset > 0) not supported"
        if rt.padding_mask and not self.padding_mask:
            return "padding mask not supported"
        if rt.segments and not self.segments:
            return "packed-document segments not supported"
        if spec.dropout and not self.dropout:
            return f"attention dropout {spec.dropout} not supported"
        if self.max_head_dim is not None and rt.head_dim > self.max_head_dim:
            return f"head_dim {rt.head_dim} > {self.max_head_dim}"
        if rt.head_dim % self.head_dim_multiple:
            return f"head_dim {rt.head_dim} not a multiple of {self.head_dim_multiple}"
        return None


class AttentionBackend(ABC):
    """One attention implementation. Subclasses set ``name`` and ``capabilities`` and implement
    :meth:`forward`. Instances are stateless and may be shared by layers."""

    name: str = "?"
    capabilities: Capabilities = Capabilities()

    def available(self) -> str | None:
        """None when usable in this environment, else why not (e.g. package not installed)."""
        return None

    def check(self, spec: AttentionSpec, rt: Runtime) -> None:
        """Raise :class:`AttentionUnsupported` if this backend cannot run ``spec`` under ``rt``."""
        reason = self.available() or self.capabilities.refusal(spec, rt)
        if reason:
            raise AttentionUnsupported(f"attention backend {self.name!r}: {reason}")

    @abstractmethod
    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        spec: AttentionSpec,
        key_padding_mask: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return ``[B, Hq, T, d]`` in q's dtype."""

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        # Delegates (rather than ``__call__ = forward``) so subclasses overriding ``forward``
        # are callable: an alias would keep pointing at the abstract method.
        return self.forward(*args, **kwargs)
