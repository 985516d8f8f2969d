"""The numbers of a model the planner works from, read from a recipe's ``[model]`` section."""

from __future__ import annotations

import attrs


@attrs.frozen
class ModelShape:
    """Widths and switches of an argonne2-family model (1.x models map onto the same fields:
    MHA, no extra norms, a 4·d GELU MLP and a learned position table)."""

    vocab_size: int
    """Embedding rows as built (padded when the recipe pads)."""
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    tie_embeddings: bool
    qk_norm: bool = False
    v_norm: bool = False
    sandwich_norm: bool = False
    swiglu_clamp: bool = False
    layer_windows: tuple[int | None, ...] = ()
    """Attention window per layer (None = full causal)."""
    family: str = "argonne2"

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def kv_width(self) -> int:
        """Width of the key (and value) projection: KV heads × head_dim."""
        return self.num_kv_heads * self.head_dim
