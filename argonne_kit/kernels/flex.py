"""``flex``: FlexAttention (:mod:`torch.nn.attention.flex_attention`) with a block-sparse mask.

The contract's masking rules are written as a ``mask_mod`` (causal, window, decode offset,
padding, segments); FlexAttention skips fully masked blocks and returns zeros for rows that see
no key. PyTorch 2.13 has **no FlexAttention backward on CPU**, so the backend declares backward
on CUDA only: :meth:`check` refuses training on CPU, and a forward that autograd would record on
CPU is refused up front instead of failing later inside ``backward()``. On CPU the forward runs
eagerly (PyTorch warns that it is unfused); on CUDA it is compiled by default (the fused kernel).

Block masks are cached: the position-only ones by shape and spec, the data-dependent ones
(padding, segments) by the identity and version of the mask tensors, so the layers of one step
share one block mask.
"""

from __future__ import annotations

import functools
from collections import OrderedDict

import torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

from argonne_kit.contracts.attention import (
    AttentionBackend,
    AttentionSpec,
    AttentionUnsupported,
    Capabilities,
)
from argonne_kit.kernels.inputs import exact_dtype, needs_grad, validate

#: Block masks kept per backend instance (a model asks for a handful per step).
BLOCK_MASK_CACHE_SIZE = 16


@functools.cache
def _compiled_flex_attention():
    return torch.compile(flex_attention, dynamic=False)


def _mask_mod(
    spec: AttentionSpec,
    num_queries: int,
    num_keys: int,
    device: torch.device,
    key_padding_mask: torch.Tensor | None,
    segment_ids: torch.Tensor | None,
):
    """The contract's visibility rule as a FlexAttention ``mask_mod(b, h, q_idx, kv_idx)``."""
    # Offset and window are captured as tensors, not ints: FlexAttention traces ``mask_mod``
    # and would recompile for every new integer (every decode step), but not for a new tensor.
    offset = torch.tensor(spec.query_offset, device=device)
    window = None if spec.window is None else torch.tensor(spec.window, device=device)
    causal = spec.causal
    if segment_ids is not None:
        query_segments = segment_ids[:, num_keys - num_queries :]

    def mask_mod(b, h, q_idx, kv_idx):
        distance = q_idx + offset - kv_idx
        keep = distance >= 0 if causal else kv_idx >= 0
        if window is not None:
            keep = keep & (distance <= window)
        if key_padding_mask is not None:
            keep = keep & key_padding_mask[b, kv_idx]
        if segment_ids is not None:
            keep = keep & (query_segments[b, q_idx] == segment_ids[b, kv_idx])
        return keep

    return mask_mod


class FlexAttention(AttentionBackend):
    """FlexAttention: forward on CPU and CUDA, backward on CUDA only."""

    name = "flex"
    capabilities = Capabilities(backward_devices=frozenset({"cuda"}), dropout=False)

    def __init__(self, compile: bool | None = None):
        #: run ``flex_attention`` through ``torch.compile`` (the fused kernel); None = compile on
        #: CUDA, run eagerly elsewhere (eager is the unfused reference implementation)
        self.compile = compile
        self._block_masks: OrderedDict = OrderedDict()

    def forward(self, q, k, v, spec: AttentionSpec, key_padding_mask=None, segment_ids=None):
        validate(q, k, v, spec, key_padding_mask, segment_ids)
        if spec.dropout:
            raise AttentionUnsupported(
                f"attention backend {self.name!r}: attention dropout {spec.dropout} "
                "not supported (FlexAttention has none)"
            )
        device_type = q.device.type
        if device_type not in self.capabilities.backward_devices and needs_grad(q, k, v):
            raise AttentionUnsupported(
                f"attention backend {self.name!r}: no backward on {device_type!r} (FlexAttention has no "
                "CPU backward in this PyTorch); run it under torch.no_grad() or train with 'sdpa'"
            )
        block_mask = self._block_mask(spec, q, k, key_padding_mask, segment_ids)
        compile_kernel = self.compile if self.compile is not None else device_type == "cuda"
        kernel = _compiled_flex_attention() if compile_kernel else flex_attention
        with exact_dtype(device_type):
            return kernel(q, k, v, block_mask=block_mask, scale=spec.scale, enable_gqa=q.shape[1] != k.shape[1])

    def _block_mask(self, spec, q, k, key_padding_mask, segment_ids):
        num_queries, num_keys = q.shape[2], k.shape[2]
        data = tuple(t for t in (key_padding_mask, segment_ids) if t is not None)
        if any(t.is_inference() for t in data):
            key = None  # inference tensors have no version counter: never cache those
        else:
            # Holding the tensors in the entry keeps their ids unique while it is cached.
            key = (
                num_queries,
                num_keys,
                spec.causal,
                spec.window,
                spec.query_offset,
                q.device,
                tuple((id(t), t._version) for t in data),
            )
            hit = self._block_masks.get(key)
            if hit is not None:
                self._block_masks.move_to_end(key)
                return hit[0]
        batch = q.shape[0] if data else None
        block_mask = create_block_mask(
            _mask_mod(spec, num_queries, num_keys, q.device, key_padding_mask, segment_ids),
            batch,
            None,
            num_queries,
            num_keys,
            device=q.device,
        )
        if key is not None:
            self._block_masks[key] = (block_mask, data)
            if len(self._block_masks) > BLOCK_MASK_CACHE_SIZE:
                self._block_masks.popitem(last=False)
        return block_mask
