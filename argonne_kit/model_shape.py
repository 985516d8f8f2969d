"""The Argonne models' defaults and shape rules, in one place.

The recipe's ``[model]`` sections (:mod:`argonne_kit.recipe.model_sections`) and the Hugging Face
configs (:mod:`argonne_kit.model.config`) both take their defaults from :data:`ARGONNE2_DEFAULTS`
/ :data:`ARGONNE1_DEFAULTS` and derive the shape with :func:`derive_argonne2_shape` /
:func:`derive_argonne1_shape`, so a recipe and the model it builds cannot disagree. Pure Python: the recipe layer imports it without torch or transformers, and the
exported ``configuration_argonne.py`` bundles it.
"""

from __future__ import annotations

from typing import Any

#: Defaults of the argonne2 fields shared by the recipe section and the HF config: the 3.0 shape,
#: with the KV heads and MLP width derived by rule and the interleaved local window off (no
#: Argonne pretrain ever ran with it, although released 3.x configs advertise it).
ARGONNE2_DEFAULTS: dict[str, Any] = {
    "hidden_size": 3072,
    "num_hidden_layers": 24,
    "num_attention_heads": 12,
    "num_key_value_heads": None,
    "intermediate_size": None,
    "max_position_embeddings": 1024,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1e6,
    "qk_norm": True,
    "v_norm": True,
    "sandwich_norm": True,
    "interleaved_local_attention": False,
    "local_attention_window": None,
    "final_logit_softcapping": 15.0,
    "swiglu_clamp": 65504.0,
    "tie_word_embeddings": True,
}


#: Defaults of the GPT-2-style 1.x fields shared by the recipe section and the HF config: the
#: released 1.0 shape (the original class defaulted to 24 layers and 24 heads, which no release used).
ARGONNE1_DEFAULTS: dict[str, Any] = {
    "block_size": 2048,
    "n_layer": 12,
    "n_head": 12,
    "n_embd": 1296,
    "dropout": 0.1,
}


class ShapeError(ValueError):
    """An impossible shape; the message starts with the offending field's name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is ≥ ``value``."""
    return (value + multiple - 1) // multiple * multiple


def default_intermediate_size(hidden_size: int) -> int:
    """The 2.0/2.5 MLP width rule: round_up_256(int(8·d/3)) (11,008 for d=4080; 8,192 for d=3072)."""
    return round_up(int(8 * hidden_size / 3), 256)


def default_key_value_heads(num_attention_heads: int) -> int:
    """KV heads when none are given: half the query heads, at least one."""
    return max(1, num_attention_heads // 2)


def effective_window(local_attention_window: int | None) -> int | None:
    """The configured window, or None when unset or ≤ 0 (no window)."""
    return local_attention_window if local_attention_window is not None and local_attention_window > 0 else None


def derive_argonne2_shape(
    *,
    hidden_size: int,
    num_hidden_layers: int,
    num_attention_heads: int,
    num_key_value_heads: int | None,
    intermediate_size: int | None,
    interleaved_local_attention: bool,
    local_attention_window: int | None,
) -> dict[str, Any]:
    """The derived shape: ``head_dim``, ``num_attention_heads``, ``num_key_value_heads``,
    ``intermediate_size`` and ``layer_windows`` (one per block, 0 = full causal attention; odd
    blocks get the window when ``interleaved_local_attention`` is on and a window > 0 is set).
    Raises :class:`ShapeError` for heads that do not divide the width or KV heads that do not
    divide the heads."""
    if hidden_size % num_attention_heads:
        raise ShapeError("num_attention_heads", f"{num_attention_heads} does not divide hidden_size {hidden_size}")
    kv = num_key_value_heads or default_key_value_heads(num_attention_heads)
    if num_attention_heads % kv:
        raise ShapeError("num_key_value_heads", f"{kv} does not divide num_attention_heads {num_attention_heads}")
    window = effective_window(local_attention_window)
    return {
        "head_dim": hidden_size // num_attention_heads,
        "num_attention_heads": num_attention_heads,
        "num_key_value_heads": kv,
        "intermediate_size": intermediate_size or default_intermediate_size(hidden_size),
        "layer_windows": [
            window if interleaved_local_attention and window is not None and i % 2 == 1 else 0
            for i in range(num_hidden_layers)
        ],
    }


def derive_argonne1_shape(*, n_embd: int, n_head: int) -> dict[str, Any]:
    """The derived shape of a 1.x model: ``head_dim`` and ``num_attention_heads``. Raises
    :class:`ShapeError` for heads that do not divide the width."""
    if n_embd % n_head:
        raise ShapeError("n_head", f"{n_head} does not divide n_embd {n_embd}")
    return {"head_dim": n_embd // n_head, "num_attention_heads": n_head}
