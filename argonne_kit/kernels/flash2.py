"""``flash2``: flash-attn 2's ``flash_attn_func`` (CUDA, fp16/bf16).

flash-attn is an optional dependency (``pip install 'argonne-kit[flash]'`` on a CUDA machine)
and is imported only when a forward pass runs; :meth:`available` looks for it with
``importlib.util.find_spec`` and also refuses a ``flash_attn`` without the flash-attn 2 API
(the original's training environment had flash-attn 4, which lacks
``flash_attn.flash_attn_interface``, and its window was silently dropped — D-4).

Mapping of the contract onto flash-attn:

- layout: q/k/v ``[B, H, T, d]`` → ``[B, T, H, d]`` and back;
- window ``w`` (query ``i`` sees keys ``i-w … i``) → ``window_size=(w, 0)``: flash's
  ``(left, right)`` lets query ``i`` see keys ``i-left … i+right``. No window → ``(-1, -1)``
  (``-1`` is unbounded). A non-causal spec with a window keeps the right side unbounded,
  ``(w, -1)``, as the contract's window only limits the look-back;
- flash-attn aligns queries with the *end* of the keys (query ``t`` at position ``S - T + t``),
  so only ``query_offset == S - T`` can be honoured — training/prefill (0) and cached decode;
- GQA is native (fewer kv heads are passed as they are).

Padding masks and packed segments are **not supported** (declared, so ``auto`` picks another
backend): flash-attn's varlen path drops padded queries and re-numbers positions, which equals
the contract only for contiguous padding and never for a right-padded query that still sees real
keys.
"""

from __future__ import annotations

import functools
import importlib.util

import torch

from argonne_kit.contracts.attention import (
    AttentionBackend,
    AttentionSpec,
    AttentionUnsupported,
    Capabilities,
)
from argonne_kit.kernels.inputs import validate

INSTALL_HINT = "pip install 'argonne-kit[flash]' on a CUDA machine"


class Flash2Attention(AttentionBackend):
    """flash-attn 2: CUDA only, fp16/bf16, head_dim ≤ 256 and a multiple of 8; windows, GQA and
    cached decode; no padding mask, no segments."""

    name = "flash2"
    capabilities = Capabilities(
        dtypes=frozenset({torch.float16, torch.bfloat16}),
        devices=frozenset({"cuda"}),
        backward_devices=frozenset({"cuda"}),
        padding_mask=False,
        segments=False,
        max_head_dim=256,
        # flash-attn pads other head sizes internally; multiples of 8 avoid that copy.
        head_dim_multiple=8,
    )

    def __init__(self, deterministic: bool = False):
        #: flash-attn's deterministic backward (slower; bitwise-reproducible gradients)
        self.deterministic = deterministic

    def available(self) -> str | None:
        return _unavailable_reason()

    def forward(self, q, k, v, spec: AttentionSpec, key_padding_mask=None, segment_ids=None):
        validate(q, k, v, spec, key_padding_mask, segment_ids)
        reason = self.available()
        if reason is None and (key_padding_mask is not None or segment_ids is not None):
            reason = "padding mask / packed-document segments not supported"
        num_queries, num_keys = q.shape[2], k.shape[2]
        if reason is None and spec.query_offset != num_keys - num_queries:
            reason = (
                f"query_offset {spec.query_offset} != S - T = {num_keys - num_queries} "
                "(flash-attn aligns the queries with the end of the keys)"
            )
        if reason:
            raise AttentionUnsupported(f"attention backend {self.name!r}: {reason}")
        try:  # an optional, CUDA-only dependency, imported on first use
            from flash_attn import flash_attn_func
        except ImportError as exc:
            raise AttentionUnsupported(f"attention backend {self.name!r}: {exc} ({INSTALL_HINT})") from exc

        out = flash_attn_func(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            dropout_p=spec.dropout,
            softmax_scale=spec.scale,
            causal=spec.causal,
            window_size=window_size(spec),
            deterministic=self.deterministic,
        )
        return out.transpose(1, 2)


def window_size(spec: AttentionSpec) -> tuple[int, int]:
    """flash-attn's ``(left, right)`` for the contract's window (see the module docstring)."""
    if spec.window is None:
        return (-1, -1)
    return (spec.window, 0 if spec.causal else -1)


@functools.cache
def _unavailable_reason() -> str | None:
    """Why flash-attn 2 cannot be used here, or None. Cached: installed packages do not change
    during a run (tests clear the cache when they fake an installation)."""
    if importlib.util.find_spec("flash_attn") is None:
        return f"flash_attn not installed ({INSTALL_HINT})"
    if importlib.util.find_spec("flash_attn.flash_attn_interface") is None:
        return (
            "the installed flash_attn has no flash_attn.flash_attn_interface (not the flash-attn 2 "
            f"API; flash-attn 4 is not supported by this backend) — {INSTALL_HINT}"
        )
    return None
