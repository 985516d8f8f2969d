"""Recipe ``[model]`` sections: the typed, documented view of the model configs.

``kind = "argonne2"`` covers the Llama-style family 2.0 → 4.0; ``kind = "argonne"`` the
GPT-2-style 1.x models. Field names are those of the Hugging Face ``config.json`` so a recipe,
a released config and the CLI all say the same thing.
"""

from __future__ import annotations

from typing import Any

import attrs


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value}")


@attrs.define(kw_only=True)
class Argonne2ModelConfig:
    """The argonne2 family (2.0, 2.5, 3.0, 3.5, 4.0): GQA, SwiGLU, RMSNorm, RoPE, tied head.

    The training losses (z-loss, shifted-logit MTP terms, chunked cross-entropy) are the
    objective's settings, each with one key in ``[objective]``; the model section has none."""

    __recipe_hints__ = {
        "z_loss_weight": "objective.z_loss_weight",
        "mtp_horizon": "objective.mtp_horizon",
        "mtp_loss_weight": "objective.mtp_loss_weight",
        "loss_chunk_size": "objective.loss_chunk_size",
    }

    vocab_size: int | None = attrs.field(default=None, validator=_positive)
    """Embedding rows; None = the tokenizer's length (``len(tokenizer)``, as every release did)."""
    hidden_size: int = attrs.field(default=3072, validator=_positive)
    """Model width d."""
    num_hidden_layers: int = attrs.field(default=24, validator=_positive)
    """Number of transformer blocks."""
    num_attention_heads: int = attrs.field(default=12, validator=_positive)
    """Query heads; head_dim = hidden_size / num_attention_heads."""
    num_key_value_heads: int | None = attrs.field(default=None, validator=_positive)
    """Key/value heads (GQA); None = num_attention_heads // 2 (at least 1)."""
    intermediate_size: int | None = attrs.field(default=None, validator=_positive)
    """SwiGLU width; None = round_up_256(int(8·hidden_size/3)) (2.0/2.5 rule; 3.0 set 8192)."""
    max_position_embeddings: int = attrs.field(default=1024, validator=_positive)
    """Context length the RoPE cache is built for (grows on demand)."""
    rms_norm_eps: float = 1e-6
    """RMSNorm epsilon."""
    rope_theta: float = 1e6
    """RoPE base θ (1e4 for 2.0/2.5, 1e6 from 3.0 on)."""
    qk_norm: bool = True
    """RMSNorm over head_dim on queries and keys before RoPE (3.0+)."""
    v_norm: bool = True
    """RMSNorm over head_dim on values (3.0+)."""
    sandwich_norm: bool = True
    """Extra RMSNorm on the attention and MLP outputs before each residual add (3.0+)."""
    interleaved_local_attention: bool = False
    """Give odd-indexed blocks a sliding window of ``local_attention_window`` tokens."""
    local_attention_window: int | None = None
    """Window w (query i sees keys i-w…i) for the local blocks; None or ≤0 = no window."""
    logit_softcap: float = 15.0
    """Final logits ← c·tanh(logits/c); 0 = off (2.x)."""
    swiglu_clamp: float = 65504.0
    """Clamp the MLP gate/up projections to ±value before SwiGLU, as every original argonne2
    model did (an fp16 overflow guard); 0 = off."""
    tie_word_embeddings: bool = True
    """Share the embedding matrix with the LM head."""
    pad_vocab_to_multiple_of: int = 1
    """Pad embedding rows to a multiple (e.g. 128 for FP8 training); exports trim back."""


@attrs.define(kw_only=True)
class Argonne1ModelConfig:
    """The GPT-2-style 1.x models: learned positions, LayerNorm, GELU MLP with biases, untied head."""

    vocab_size: int | None = attrs.field(default=None, validator=_positive)
    """Embedding rows; None = the tokenizer's length (12,000 for the released 1.x tokenizer)."""
    block_size: int = attrs.field(default=2048, validator=_positive)
    """Context length (learned position table rows)."""
    n_layer: int = attrs.field(default=12, validator=_positive)
    """Number of blocks."""
    n_head: int = attrs.field(default=12, validator=_positive)
    """Attention heads (MHA)."""
    n_embd: int = attrs.field(default=1296, validator=_positive)
    """Model width."""
    dropout: float = 0.1
    """Dropout on embeddings, attention probabilities and MLP/residual outputs."""


#: recipe ``[model] kind`` → its config class
MODEL_KINDS: dict[str, type] = {"argonne2": Argonne2ModelConfig, "argonne": Argonne1ModelConfig}
