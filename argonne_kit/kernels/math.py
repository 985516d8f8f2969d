"""``math``: the reference attention every other backend is tested against.

Explicit ``softmax(Q·Kᵀ·scale + mask)·V`` computed in fp32 from the given tensors (kv heads
repeated for GQA), with the mask of :mod:`.masks`; the result is returned in q's dtype. It
materialises the ``[B, H, T, S]`` score matrix: correct everywhere, fast nowhere. ``spec.dropout``
drops attention probabilities (inverted dropout, as ``F.dropout``) after the softmax.
"""

from __future__ import annotations

import torch.nn.functional as F

from argonne_kit.contracts.attention import (
    AttentionBackend,
    AttentionSpec,
    Capabilities,
)
from argonne_kit.kernels.inputs import exact_dtype, validate
from argonne_kit.kernels.masks import visibility


class MathAttention(AttentionBackend):
    """Reference attention: any device, dtype, window, GQA, decode offset, padding, segments and
    dropout, forward and backward."""

    name = "math"
    capabilities = Capabilities()

    def forward(self, q, k, v, spec: AttentionSpec, key_padding_mask=None, segment_ids=None):
        return self.forward_with_weights(q, k, v, spec, key_padding_mask, segment_ids)[0]

    def forward_with_weights(self, q, k, v, spec: AttentionSpec, key_padding_mask=None, segment_ids=None):
        """``(output, probabilities [B, Hq, T, S])``: the output of :meth:`forward` and the
        attention probabilities after dropout (zero rows for queries that see no key), in q's
        dtype — what ``output_attentions=True`` returns."""
        validate(q, k, v, spec, key_padding_mask, segment_ids)
        num_queries, num_keys, head_dim = q.shape[2], k.shape[2], q.shape[3]
        visible = visibility(spec, num_queries, num_keys, q.device, key_padding_mask, segment_ids)
        group = q.shape[1] // k.shape[1]
        scale = spec.scale if spec.scale is not None else head_dim**-0.5
        with exact_dtype(q.device.type):
            keys = k.float().repeat_interleave(group, dim=1)
            values = v.float().repeat_interleave(group, dim=1)
            scores = (q.float() @ keys.transpose(-2, -1)) * scale
            if visible.mask is not None:
                scores = scores.masked_fill(~visible.mask, float("-inf"))
            probs = scores.softmax(dim=-1)
            if spec.dropout:
                probs = F.dropout(probs, spec.dropout)
            if visible.empty is not None:
                probs = probs.masked_fill(visible.empty, 0.0)
            return (probs @ values).to(q.dtype), probs.to(q.dtype)
