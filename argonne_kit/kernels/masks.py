"""Which keys each query may attend to — the masking semantics of the attention contract.

One place builds the boolean visibility mask (``True`` = attend) from an
:class:`~argonne_kit.contracts.attention.AttentionSpec`, a key padding mask and segment ids,
so every backend that needs a dense mask (``math``, ``sdpa``) uses the same rules:

- query ``t`` sits at absolute position ``query_offset + t``; key ``s`` at position ``s``;
- causal: ``s <= query_offset + t``; window ``w``: additionally ``query_offset + t - s <= w``;
- padded keys (``key_padding_mask`` False) are hidden;
- a key from another segment than the query's (``segment_ids[:, S - T:]``) is hidden.

A query row that sees no key must return zeros (not NaN). Kernels produce NaN for such rows
(softmax of all ``-inf``), and NaN in the forward pass also poisons the gradients of k and v.
So rows that see no key are *opened* to every key — the kernel stays finite — and reported in
``empty`` so the caller zeroes them afterwards; the zeroing also gives those rows zero gradient.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch

from argonne_kit.contracts.attention import AttentionSpec


class Visibility(NamedTuple):
    """The keys each query may attend to.

    ``mask`` is a bool tensor broadcastable to ``[B, H, T, S]`` (``[T, S]`` when only positions
    matter, ``[B, 1, T, S]`` with padding or segments), with rows that see no key opened to all
    keys; ``None`` means every key is visible to every query. ``empty`` (``[..., T, 1]`` bool, or
    None when no row can be empty) marks the rows whose output must be zeroed.

    (A NamedTuple rather than an attrs class: ``torch.compile`` traces it without a break.)
    """

    mask: torch.Tensor | None
    empty: torch.Tensor | None


def effective_window(spec: AttentionSpec, num_queries: int) -> int | None:
    """The spec's window, or None when it cannot hide any key (``w`` at least the largest
    query-key distance ``query_offset + T - 1``). Exactly equivalent, so no window is dropped."""
    if spec.window is None or spec.window >= spec.query_offset + num_queries - 1:
        return None
    return spec.window


def visibility(
    spec: AttentionSpec,
    num_queries: int,
    num_keys: int,
    device: torch.device,
    key_padding_mask: torch.Tensor | None = None,
    segment_ids: torch.Tensor | None = None,
) -> Visibility:
    """The visibility of ``num_keys`` keys to ``num_queries`` queries under ``spec``."""
    # Inside torch.compile the mask is traced into the graph (built once per compiled graph);
    # the cache serves eager mode.
    build = _positional if torch.compiler.is_compiling() else _cached_positional
    positional = build(
        num_queries, num_keys, spec.causal, effective_window(spec, num_queries), spec.query_offset, device
    )
    if key_padding_mask is None and segment_ids is None:
        return positional
    mask = (
        positional.mask
        if positional.mask is not None
        else torch.ones(num_queries, num_keys, dtype=torch.bool, device=device)
    )
    if key_padding_mask is not None:
        mask = mask & key_padding_mask[:, None, None, :]
    if segment_ids is not None:
        query_segments = segment_ids[:, num_keys - num_queries :]
        mask = mask & (query_segments[:, None, :, None] == segment_ids[:, None, None, :])
    # No host sync: always open and report, whether or not a row is actually empty.
    empty = ~mask.any(dim=-1, keepdim=True)
    return Visibility(mask | empty, empty)


def _positional(
    num_queries: int, num_keys: int, causal: bool, window: int | None, query_offset: int, device: torch.device
) -> Visibility:
    """Causal/window/offset visibility. Which rows are full or empty is decided from the
    integers, never by reading the tensor back: no host sync, and no graph break."""
    last_query = query_offset + num_queries - 1
    if (not causal or query_offset >= num_keys - 1) and window is None:
        return Visibility(None, None)
    query_pos = torch.arange(num_queries, device=device)[:, None] + query_offset
    key_pos = torch.arange(num_keys, device=device)[None, :]
    distance = query_pos - key_pos
    mask = torch.ones(num_queries, num_keys, dtype=torch.bool, device=device)
    if causal:
        mask = mask & (distance >= 0)
    if window is not None:
        mask = mask & (distance <= window)
    # Offsets are >= 0, so a row is empty only when its window starts after the last key.
    can_be_empty = window is not None and last_query - window > num_keys - 1
    if not can_be_empty:
        return Visibility(mask, None)
    empty = ~mask.any(dim=-1, keepdim=True)
    return Visibility(mask | empty, empty)


#: Eager-mode cache: every layer of a step asks for the same few masks. The cached tensors are
#: shared, so callers must never modify them in place.
_cached_positional = functools.lru_cache(maxsize=64)(_positional)
