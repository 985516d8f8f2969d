"""Training FLOPs per token.

Convention (the one of the PaLM appendix, and of ``torch.utils.flop_counter`` for dense
kernels): ``6·N`` for the matmul weights N — every projection and the LM head (tied or not),
not the embedding lookup, norm gains or biases — plus attention scores and the weighted sum,
``12 · layers · (heads · head_dim) · keys`` per token, where ``keys`` is the sequence length for
a full-causal layer (the whole square is counted, as a dense kernel computes it) and
``min(window, seq_len)`` for a windowed layer. Recomputation by activation checkpointing or
chunked cross-entropy is not counted (model FLOPs, the basis of MFU).
"""

from __future__ import annotations

from argonne_kit.plan.shape import ModelShape


def attention_flops_per_token(shape: ModelShape, seq_len: int) -> int:
    """Forward + backward FLOPs per token of QKᵀ and the weighted sum of values."""
    width = shape.num_heads * shape.head_dim
    windows = shape.layer_windows or (None,) * shape.num_layers
    keys = sum(min(w, seq_len) if w else seq_len for w in windows)
    return 12 * width * keys


def flops_per_token(shape: ModelShape, matmul_params: int, seq_len: int) -> int:
    """``6·N + attention`` (see the module docstring)."""
    return 6 * matmul_params + attention_flops_per_token(shape, seq_len)
