"""Recipe ``[model]`` sections: the model kinds, each one config class.

``kind = "argonne2"`` covers the Llama-style family 2.0 → 4.0; ``kind = "argonne"`` the
GPT-2-style 1.x models. Field names are those of the Hugging Face ``config.json`` so a recipe,
a released config and the CLI all say the same thing. A kind's config derives its own shape
(:meth:`ModelConfig.derive`) and builds its Hugging Face config and model
(:meth:`ModelConfig.hf_config`, :meth:`ModelConfig.model_class`); the core calls only these and
never branches on the kind. Building imports the model package lazily, so reading and resolving
a recipe loads neither torch nor transformers.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from argonne_kit.errors import RecipeError
from argonne_kit.model_shape import (
    ARGONNE1_DEFAULTS,
    ARGONNE2_DEFAULTS,
    ShapeError,
    derive_argonne1_shape,
    derive_argonne2_shape,
    effective_window,
    round_up,
)
from argonne_kit.recipe.validators import positive

if TYPE_CHECKING:
    from argonne_kit.model.hf import ArgonneHFMixin


class ModelConfig(abc.ABC):
    """Base of a model kind's config: the recipe ``[model]`` section minus ``kind``.

    A subclass is an ``attrs`` class with a docstring per field, registered with
    :func:`model_kind`; ``vocab_size`` and the methods below are all the core reads on it."""

    #: Embedding rows; None = the tokenizer's length (every kind has this field).
    vocab_size: int | None

    @abc.abstractmethod
    def derive(self) -> dict[str, Any]:
        """The shape derived from the fields, stored as ``derived.model`` of the resolved recipe:
        at least ``head_dim`` and ``num_attention_heads``; where the kind has them
        ``num_key_value_heads``, ``intermediate_size`` and ``layer_windows`` (one per block, 0 =
        full causal attention), which the attention and tensor-parallel checks read. Raises
        :class:`~argonne_kit.errors.RecipeError` naming ``model.<field>`` for an impossible shape."""

    @abc.abstractmethod
    def context(self) -> tuple[str, int]:
        """The field that sets the context length, and its value (``train.seq_len`` must fit)."""

    @abc.abstractmethod
    def hf_config(self, vocab_size: int | None = None, **overrides: Any) -> Any:
        """The Hugging Face config of this model. ``vocab_size`` is the tokenizer's length (the
        section's own ``vocab_size`` wins but must hold every token id); ``overrides`` are further
        config fields (``eos_token_id``, ``attn_backend``…)."""

    @abc.abstractmethod
    def model_class(self) -> type[ArgonneHFMixin]:
        """The causal-LM class built from :meth:`hf_config` (a transformers model with the kit's
        :class:`~argonne_kit.model.hf.ArgonneHFMixin`: the runner switches its attention backend)."""


_Config = TypeVar("_Config", bound=type[ModelConfig])

#: recipe ``[model] kind`` → its config class
MODEL_KINDS: dict[str, type[ModelConfig]] = {}


def model_kind(name: str) -> Callable[[_Config], _Config]:
    """Register a :class:`ModelConfig` subclass as the recipe model kind ``name``."""

    def register(cls: _Config) -> _Config:
        if name in MODEL_KINDS:
            raise ValueError(f"model kind {name!r} is registered twice")
        MODEL_KINDS[name] = cls
        return cls

    return register


def vocab_rows(section_vocab: int | None, tokenizer_vocab: int | None) -> int:
    """Embedding rows: the section's ``vocab_size``, else the tokenizer's length; refuses a
    section value too small for the tokenizer."""
    if section_vocab is None:
        if tokenizer_vocab is None:
            raise RecipeError("model.vocab_size: not set, and no tokenizer length was given")
        return tokenizer_vocab
    if tokenizer_vocab is not None and tokenizer_vocab > section_vocab:
        raise RecipeError(
            f"model.vocab_size: {section_vocab} rows cannot hold the tokenizer's {tokenizer_vocab} tokens"
        )
    return section_vocab


@model_kind("argonne2")
@attrs.define(kw_only=True)
class Argonne2ModelConfig(ModelConfig):
    """The argonne2 family (2.0, 2.5, 3.0, 3.5, 4.0): GQA, SwiGLU, RMSNorm, RoPE, tied head.

    The training losses (z-loss, shifted-logit MTP terms, chunked cross-entropy) are the
    objective's settings, each with one key in ``[objective]``; the model section has none."""

    __recipe_hints__ = {
        "z_loss_weight": "objective.z_loss_weight",
        "mtp_horizon": "objective.mtp_horizon",
        "mtp_loss_weight": "objective.mtp_loss_weight",
        "loss_chunk_size": "objective.loss_chunk_size",
    }

    vocab_size: int | None = attrs.field(default=None, validator=positive)
    """Embedding rows; None = the tokenizer's length (``len(tokenizer)``, as every release did)."""
    hidden_size: int = attrs.field(default=ARGONNE2_DEFAULTS["hidden_size"], validator=positive)
    """Model width d."""
    num_hidden_layers: int = attrs.field(default=ARGONNE2_DEFAULTS["num_hidden_layers"], validator=positive)
    """Number of transformer blocks."""
    num_attention_heads: int = attrs.field(default=ARGONNE2_DEFAULTS["num_attention_heads"], validator=positive)
    """Query heads; head_dim = hidden_size / num_attention_heads."""
    num_key_value_heads: int | None = attrs.field(default=ARGONNE2_DEFAULTS["num_key_value_heads"], validator=positive)
    """Key/value heads (GQA); None = num_attention_heads // 2 (at least 1)."""
    intermediate_size: int | None = attrs.field(default=ARGONNE2_DEFAULTS["intermediate_size"], validator=positive)
    """SwiGLU width; None = round_up_256(int(8·hidden_size/3)) (2.0/2.5 rule; 3.0 set 8192)."""
    max_position_embeddings: int = attrs.field(default=ARGONNE2_DEFAULTS["max_position_embeddings"], validator=positive)
    """Context length the RoPE cache is built for (grows on demand)."""
    rms_norm_eps: float = ARGONNE2_DEFAULTS["rms_norm_eps"]
    """RMSNorm epsilon."""
    rope_theta: float = ARGONNE2_DEFAULTS["rope_theta"]
    """RoPE base θ (1e4 for 2.0/2.5, 1e6 from 3.0 on)."""
    qk_norm: bool = ARGONNE2_DEFAULTS["qk_norm"]
    """RMSNorm over head_dim on queries and keys before RoPE (3.0+)."""
    v_norm: bool = ARGONNE2_DEFAULTS["v_norm"]
    """RMSNorm over head_dim on values (3.0+)."""
    sandwich_norm: bool = ARGONNE2_DEFAULTS["sandwich_norm"]
    """Extra RMSNorm on the attention and MLP outputs before each residual add (3.0+)."""
    interleaved_local_attention: bool = ARGONNE2_DEFAULTS["interleaved_local_attention"]
    """Give odd-indexed blocks a sliding window of ``local_attention_window`` tokens."""
    local_attention_window: int | None = ARGONNE2_DEFAULTS["local_attention_window"]
    """Window w (query i sees keys i-w…i) for the local blocks; None or ≤0 = no window."""
    logit_softcap: float = ARGONNE2_DEFAULTS["final_logit_softcapping"]
    """Final logits ← c·tanh(logits/c); 0 = off (2.x). The HF config calls it
    ``final_logit_softcapping``."""
    swiglu_clamp: float = ARGONNE2_DEFAULTS["swiglu_clamp"]
    """Clamp the MLP gate/up projections to ±value before SwiGLU, as every original argonne2
    model did (an fp16 overflow guard); 0 = off."""
    tie_word_embeddings: bool = ARGONNE2_DEFAULTS["tie_word_embeddings"]
    """Share the embedding matrix with the LM head."""
    pad_vocab_to_multiple_of: int = 1
    """Pad embedding rows to a multiple (e.g. 128 for FP8 training); exports trim back."""

    def derive(self) -> dict[str, Any]:
        if self.interleaved_local_attention and effective_window(self.local_attention_window) is None:
            raise RecipeError("model.interleaved_local_attention: true needs local_attention_window > 0")
        try:
            return derive_argonne2_shape(
                hidden_size=self.hidden_size,
                num_hidden_layers=self.num_hidden_layers,
                num_attention_heads=self.num_attention_heads,
                num_key_value_heads=self.num_key_value_heads,
                intermediate_size=self.intermediate_size,
                interleaved_local_attention=self.interleaved_local_attention,
                local_attention_window=self.local_attention_window,
            )
        except ShapeError as exc:
            raise RecipeError(f"model.{exc}") from None

    def context(self) -> tuple[str, int]:
        return "max_position_embeddings", self.max_position_embeddings

    def hf_config(self, vocab_size: int | None = None, **overrides: Any) -> Any:
        from argonne_kit.model.config import ArgonneConfig

        fields = attrs.asdict(self)
        vocab = round_up(vocab_rows(fields.pop("vocab_size"), vocab_size), fields.pop("pad_vocab_to_multiple_of") or 1)
        return ArgonneConfig(vocab_size=vocab, **fields, **overrides)

    def model_class(self) -> type[ArgonneHFMixin]:
        from argonne_kit.model.modeling import ArgonneForCausalLM

        return ArgonneForCausalLM


@model_kind("argonne")
@attrs.define(kw_only=True)
class Argonne1ModelConfig(ModelConfig):
    """The GPT-2-style 1.x models: learned positions, LayerNorm, GELU MLP with biases, untied head."""

    vocab_size: int | None = attrs.field(default=None, validator=positive)
    """Embedding rows; None = the tokenizer's length (12,000 for the released 1.x tokenizer)."""
    block_size: int = attrs.field(default=ARGONNE1_DEFAULTS["block_size"], validator=positive)
    """Context length (learned position table rows)."""
    n_layer: int = attrs.field(default=ARGONNE1_DEFAULTS["n_layer"], validator=positive)
    """Number of blocks."""
    n_head: int = attrs.field(default=ARGONNE1_DEFAULTS["n_head"], validator=positive)
    """Attention heads (MHA)."""
    n_embd: int = attrs.field(default=ARGONNE1_DEFAULTS["n_embd"], validator=positive)
    """Model width."""
    dropout: float = ARGONNE1_DEFAULTS["dropout"]
    """Dropout on embeddings, attention probabilities and MLP/residual outputs."""

    def derive(self) -> dict[str, Any]:
        try:
            return derive_argonne1_shape(n_embd=self.n_embd, n_head=self.n_head)
        except ShapeError as exc:
            raise RecipeError(f"model.{exc}") from None

    def context(self) -> tuple[str, int]:
        return "block_size", self.block_size

    def hf_config(self, vocab_size: int | None = None, **overrides: Any) -> Any:
        from argonne_kit.model.config import ArgonneV1Config

        fields = attrs.asdict(self)
        return ArgonneV1Config(vocab_size=vocab_rows(fields.pop("vocab_size"), vocab_size), **fields, **overrides)

    def model_class(self) -> type[ArgonneHFMixin]:
        from argonne_kit.model.legacy import ArgonneV1ForCausalLM

        return ArgonneV1ForCausalLM
