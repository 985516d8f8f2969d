"""Checks and helpers shared by the attention backends: input validation, the runtime a call
implies, and running a kernel in exactly the dtype it was given (D-27)."""

from __future__ import annotations

import contextlib

import torch

from argonne_kit.contracts.attention import AttentionSpec, Runtime


def validate(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    spec: AttentionSpec,
    key_padding_mask: torch.Tensor | None,
    segment_ids: torch.Tensor | None,
) -> None:
    """Raise ValueError naming the offending input when shapes, dtypes, devices or the spec
    disagree with the contract (q ``[B, Hq, T, d]``, k/v ``[B, Hkv, S, d]``, masks ``[B, S]``)."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"attention: q, k, v must be 4-D [B, H, T, d]; got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    batch, num_heads, _, head_dim = q.shape
    if k.shape != v.shape or k.shape[0] != batch or k.shape[3] != head_dim:
        raise ValueError(
            f"attention: k and v must be [B={batch}, Hkv, S, d={head_dim}]; got k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if num_heads % k.shape[1]:
        raise ValueError(f"attention: {num_heads} query heads is not a multiple of {k.shape[1]} kv heads")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(
            f"attention: q/k/v dtypes differ ({q.dtype}, {k.dtype}, {v.dtype}); cast them "
            "to the compute dtype before calling the backend (D-27)"
        )
    if not (q.device == k.device == v.device):
        raise ValueError(f"attention: q/k/v on different devices ({q.device}, {k.device}, {v.device})")
    expected = (batch, k.shape[2])
    if key_padding_mask is not None and (key_padding_mask.shape != expected or key_padding_mask.dtype != torch.bool):
        raise ValueError(
            f"attention: key_padding_mask must be bool {list(expected)}; got "
            f"{key_padding_mask.dtype} {list(key_padding_mask.shape)}"
        )
    if segment_ids is not None and (segment_ids.shape != expected or segment_ids.is_floating_point()):
        raise ValueError(
            f"attention: segment_ids must be integer {list(expected)}; got "
            f"{segment_ids.dtype} {list(segment_ids.shape)}"
        )
    if segment_ids is not None and q.shape[2] > k.shape[2]:
        raise ValueError(
            f"attention: segment_ids need T <= S (the queries are the last T keys); got T={q.shape[2]}, S={k.shape[2]}"
        )
    if spec.query_offset < 0 or (spec.window is not None and spec.window < 0):
        raise ValueError(f"attention: query_offset and window must be >= 0; got {spec}")


def runtime_of(
    q: torch.Tensor,
    k: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    segment_ids: torch.Tensor | None,
    needs_backward: bool,
) -> Runtime:
    """The :class:`Runtime` a call with these tensors runs under."""
    return Runtime(
        device_type=q.device.type,
        dtype=q.dtype,
        head_dim=q.shape[-1],
        num_heads=q.shape[1],
        num_kv_heads=k.shape[1],
        needs_backward=needs_backward,
        padding_mask=key_padding_mask is not None,
        segments=segment_ids is not None,
    )


def needs_grad(*tensors: torch.Tensor) -> bool:
    """True when autograd will record this call."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def exact_dtype(device_type: str):
    """A context that switches autocast off, so a kernel computes in the dtype of the tensors it
    was given: the caller chose that dtype explicitly (D-27), and an ambient autocast must not
    silently change it (SDPA under CPU bf16 autocast would return bf16 for fp32 inputs)."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()
