"""Hugging Face configs of the Argonne models.

``ArgonneConfig`` (``model_type = "argonne2"``) describes the Llama-style family 2.0 → 4.0 and
reads the field names of the released ``config.json`` files (original.md §2.1). ``ArgonneV1Config``
(``model_type = "argonne"``) describes the GPT-2-style 1.x models (original.md §1.1–1.2).

Legacy aliases (D-5). The original config accepted ``n_embd``, ``n_layer``, ``n_head`` and
``block_size`` and let them *override* the modern fields, and it wrote them back into every
``config.json``; a stale ``block_size`` then silently capped ``max_position_embeddings`` on
reload. Here an alias is only adopted when its modern field is absent; when both are present the
modern field wins and a differing alias is reported with a warning. Aliases are never stored, so
a saved config contains only the modern names.
"""

from __future__ import annotations

import logging

from transformers import PreTrainedConfig

from argonne_kit.model_shape import (
    ARGONNE1_DEFAULTS,
    ARGONNE2_DEFAULTS,
    derive_argonne1_shape,
    derive_argonne2_shape,
    effective_window,
)

log = logging.getLogger(__name__)

#: legacy alias → modern field of ``ArgonneConfig``
LEGACY_ALIASES = {
    "n_embd": "hidden_size",
    "n_layer": "num_hidden_layers",
    "n_head": "num_attention_heads",
    "block_size": "max_position_embeddings",
}

#: Defaults of the fields that legacy aliases can supply (None in the dataclass marks "not given").
_ALIASED_DEFAULTS = {field: ARGONNE2_DEFAULTS[field] for field in LEGACY_ALIASES.values()}


#: config attribute holding the ``attn_implementation`` the model last reported (not saved)
REPORTED_ATTENTION_KEY = "_argonne_reported_attention"


class ArgonneConfig(PreTrainedConfig):
    """Config of the argonne2 family (2.0, 2.5, 3.0, 3.5, 4.0).

    Defaults are the recipe ``[model]`` section's (:data:`argonne_kit.model_shape.ARGONNE2_DEFAULTS`,
    the 3.0 shape) and the shape is derived by the same rules
    (:func:`argonne_kit.model_shape.derive_argonne2_shape`), so a recipe and its model agree.
    ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads`` and
    ``max_position_embeddings`` default to ``None`` only to tell "not given" from "given" while
    legacy aliases are read; after construction they hold 3072 / 24 / 12 / 1024 when neither
    the field nor its alias was given. ``num_key_value_heads`` and ``intermediate_size`` given as
    None are derived (half the heads; round_up_256(int(8·d/3))).

    The original class defaulted to 4 KV heads, an 8,192-wide MLP and
    ``interleaved_local_attention: true, local_attention_window: 256``; released config files
    state all of these, so the defaults only matter for configs written by hand. The local
    window is off by default because no Argonne pretrain ever ran with it although released
    3.0/3.5 configs advertise it (D-4); this config honours whatever a file says, on every
    backend.
    """

    model_type = "argonne2"

    vocab_size: int = 151936
    hidden_size: int | None = None
    num_hidden_layers: int | None = None
    num_attention_heads: int | None = None
    num_key_value_heads: int | None = ARGONNE2_DEFAULTS["num_key_value_heads"]
    intermediate_size: int | None = ARGONNE2_DEFAULTS["intermediate_size"]
    max_position_embeddings: int | None = None
    attention_dropout: float = 0.0
    hidden_dropout: float = 0.0
    rms_norm_eps: float = ARGONNE2_DEFAULTS["rms_norm_eps"]
    rope_theta: float = ARGONNE2_DEFAULTS["rope_theta"]
    sliding_window: int | None = None
    use_flash_attention: bool = True
    use_gradient_checkpointing: bool = False
    qk_norm: bool = ARGONNE2_DEFAULTS["qk_norm"]
    v_norm: bool = ARGONNE2_DEFAULTS["v_norm"]
    sandwich_norm: bool = ARGONNE2_DEFAULTS["sandwich_norm"]
    z_loss_weight: float = 0.0
    mtp_horizon: int = 1
    mtp_loss_weight: float = 0.0
    interleaved_local_attention: bool = ARGONNE2_DEFAULTS["interleaved_local_attention"]
    local_attention_window: int | None = ARGONNE2_DEFAULTS["local_attention_window"]
    final_logit_softcapping: float | None = ARGONNE2_DEFAULTS["final_logit_softcapping"]
    """Final logits ← c·tanh(logits/c) (3.0 on); None or 0 = off (2.x). The name TRL and Gemma
    read, so TRL's fused log-prob head applies it too. Older exports call it ``logit_softcap``,
    which is read as this field."""
    swiglu_clamp: float | None = ARGONNE2_DEFAULTS["swiglu_clamp"]
    """Clamp of the MLP gate/up projections to ±value before SwiGLU (the original's fp16 guard,
    always on in the original model); None or 0 = off (as in Qwen3 and Llama)."""
    loss_chunk_size: int = 0
    tie_word_embeddings: bool = ARGONNE2_DEFAULTS["tie_word_embeddings"]
    attention_bias: bool = False
    mlp_bias: bool = False
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    attn_backend: str = "auto"
    """Registered attention backend (``auto``, ``math``, ``sdpa``, ``flex``, ``flash2`` or a
    third party's); resolved per layer by ``argonne_kit.attention.select_backends``.
    ``use_flash_attention`` is read for compatibility but superseded by this field."""

    def __post_init__(self, **kwargs):
        _apply_legacy_aliases(self, kwargs)
        if "logit_softcap" in kwargs:  # the earlier name (older exports, recipes): read, never stored
            self.final_logit_softcapping = kwargs.pop("logit_softcap")
        if not self.final_logit_softcapping:
            self.final_logit_softcapping = None  # off; never a cap of 0 (TRL divides by it)
        for name, default in _ALIASED_DEFAULTS.items():
            if getattr(self, name) is None:
                setattr(self, name, default)
        shape = self.derived_shape()
        self.num_key_value_heads = shape["num_key_value_heads"]
        self.intermediate_size = shape["intermediate_size"]
        self.local_attention_window = effective_window(self.local_attention_window)
        self.mtp_horizon = max(1, int(self.mtp_horizon))
        if self.pad_token_id is None and isinstance(self.eos_token_id, int):
            self.pad_token_id = self.eos_token_id
        if self.sliding_window is not None:
            # transformers would build sliding-window KV caches from it, and the original model
            # never read it: the window comes from interleaved_local_attention (original.md §2.7).
            raise ValueError(
                "sliding_window is not used by Argonne models; set "
                "interleaved_local_attention=true and local_attention_window instead"
            )
        for name in ("attention_dropout", "hidden_dropout"):
            if getattr(self, name):
                raise ValueError(
                    f"{name}={getattr(self, name)} is not supported: every argonne2 "
                    "release trained without dropout and the attention contract has none"
                )
        super().__post_init__(**kwargs)

    @property
    def head_dim(self) -> int:
        """Per-head width, hidden_size / num_attention_heads."""
        hidden, heads = self.hidden_size, self.num_attention_heads
        assert hidden is not None and heads is not None  # None only until __post_init__ fills the defaults
        return hidden // heads

    def _remove_keys_not_serialized(self, d: dict) -> None:
        # the attention name last reported to transformers is runtime state, not configuration
        d.pop(REPORTED_ATTENTION_KEY, None)
        super()._remove_keys_not_serialized(d)

    @property
    def softcap(self) -> float | None:
        """The final-logit softcap, or None when off (0 or None)."""
        return self.final_logit_softcapping

    def derived_shape(self) -> dict:
        """head_dim, KV heads, MLP width and per-layer windows, by the rules the recipe uses."""
        hidden, layers, heads = self.hidden_size, self.num_hidden_layers, self.num_attention_heads
        assert hidden is not None and layers is not None and heads is not None  # filled by __post_init__
        return derive_argonne2_shape(
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=self.num_key_value_heads,
            intermediate_size=self.intermediate_size,
            interleaved_local_attention=self.interleaved_local_attention,
            local_attention_window=self.local_attention_window,
        )

    def layer_windows(self) -> list[int | None]:
        """Attention window per block (None = full causal): odd blocks get
        ``local_attention_window`` when ``interleaved_local_attention`` is on (original.md §2.7)."""
        return [window or None for window in self.derived_shape()["layer_windows"]]


def _apply_legacy_aliases(config: ArgonneConfig, kwargs: dict) -> None:
    """Adopt ``n_embd``/``n_layer``/``n_head``/``block_size`` only where the modern field is not
    given; warn when both are given and differ (D-5). The aliases are consumed, never stored."""
    for alias, field in LEGACY_ALIASES.items():
        if alias not in kwargs:
            continue
        value = kwargs.pop(alias)
        current = getattr(config, field)
        if current is None:
            log.warning("config: legacy field %r=%s read as %s", alias, value, field)
            setattr(config, field, value)
        elif current != value:
            log.warning(
                "config: legacy field %r=%s ignored; %s=%s takes precedence (D-5)", alias, value, field, current
            )


class ArgonneV1Config(PreTrainedConfig):
    """Config of the GPT-2-style 1.x models (Argonne 1.0 / 1.5), field names as released.

    Defaults are the recipe section's (:data:`argonne_kit.model_shape.ARGONNE1_DEFAULTS`, the
    released 1.0 shape: 12 layers and 12 heads; 1.5 used 16 and 16; the original class said 24
    and 24), with the 1.x tokenizer's 12,000 rows. The HF-standard names (``hidden_size``,
    ``num_hidden_layers``, ``num_attention_heads``, ``max_position_embeddings``) read the 1.x
    fields so generation utilities work.
    """

    model_type = "argonne"
    attribute_map = {
        "hidden_size": "n_embd",
        "num_hidden_layers": "n_layer",
        "num_attention_heads": "n_head",
        "max_position_embeddings": "block_size",
    }

    vocab_size: int = 12000
    block_size: int = ARGONNE1_DEFAULTS["block_size"]
    n_layer: int = ARGONNE1_DEFAULTS["n_layer"]
    n_head: int = ARGONNE1_DEFAULTS["n_head"]
    n_embd: int = ARGONNE1_DEFAULTS["n_embd"]
    dropout: float = ARGONNE1_DEFAULTS["dropout"]
    use_flash_attn: bool = True
    tie_word_embeddings: bool = False
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    attn_backend: str = "auto"
    """Registered attention backend name; ``use_flash_attn`` (1.5) is read but superseded."""

    def __post_init__(self, **kwargs):
        derive_argonne1_shape(n_embd=self.n_embd, n_head=self.n_head)  # refuses heads that do not divide
        if self.tie_word_embeddings:
            raise ValueError("Argonne 1.x has an untied head (tie_word_embeddings must be false)")
        super().__post_init__(**kwargs)

    def _remove_keys_not_serialized(self, d: dict) -> None:
        # the attention name last reported to transformers is runtime state, not configuration
        d.pop(REPORTED_ATTENTION_KEY, None)
        super()._remove_keys_not_serialized(d)

    @property
    def head_dim(self) -> int:
        """Per-head width, n_embd / n_head."""
        return self.n_embd // self.n_head
