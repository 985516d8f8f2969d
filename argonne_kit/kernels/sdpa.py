"""``sdpa``: :func:`torch.nn.functional.scaled_dot_product_attention`.

Full causal attention over ``T == S`` keys (training, prefill) takes the ``is_causal=True`` fast
path, which lets PyTorch pick its fused kernels. Everything else — windows, cached decode,
padding, packed segments — passes the explicit boolean mask of :mod:`.masks`, so a window is
honoured, never dropped (D-4). GQA uses ``enable_gqa`` (on CUDA with a mask, repeated kv heads
instead: see below). No fallback of any kind: an error or an
out-of-memory propagates (D-15).
"""

from __future__ import annotations

import torch.nn.functional as F

from argonne_kit.contracts.attention import (
    AttentionBackend,
    AttentionSpec,
    Capabilities,
)
from argonne_kit.kernels.inputs import exact_dtype, validate
from argonne_kit.kernels.masks import effective_window, visibility


class SdpaAttention(AttentionBackend):
    """PyTorch scaled-dot-product attention: every device, dtype and masking feature, with
    backward everywhere."""

    name = "sdpa"
    capabilities = Capabilities()

    def forward(self, q, k, v, spec: AttentionSpec, key_padding_mask=None, segment_ids=None):
        validate(q, k, v, spec, key_padding_mask, segment_ids)
        num_queries, num_keys = q.shape[2], k.shape[2]
        kwargs = {"scale": spec.scale, "enable_gqa": q.shape[1] != k.shape[1], "dropout_p": spec.dropout}
        plain_causal = (
            spec.causal
            and spec.query_offset == 0
            and num_queries == num_keys
            and effective_window(spec, num_queries) is None
            and key_padding_mask is None
            and segment_ids is None
        )
        with exact_dtype(q.device.type):
            if plain_causal:
                return F.scaled_dot_product_attention(q, k, v, is_causal=True, **kwargs)
            visible = visibility(spec, num_queries, num_keys, q.device, key_padding_mask, segment_ids)
            if visible.mask is not None and kwargs["enable_gqa"] and q.device.type != "cpu":
                # CUDA's memory-efficient kernel takes a mask but not enable_gqa; with both, PyTorch
                # picks the O(T²)-memory math kernel. Repeating the kv heads costs far less.
                group = q.shape[1] // k.shape[1]
                k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
                kwargs["enable_gqa"] = False
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=visible.mask, **kwargs)
            if visible.empty is not None:
                out = out.masked_fill(visible.empty, 0.0)
            return out
