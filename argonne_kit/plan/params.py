"""Exact parameter counts of a recipe's model, from the model itself built on the meta device."""

from __future__ import annotations

import attrs
import torch
from transformers import PreTrainedModel

from argonne_kit.model.config import ArgonneConfig, ArgonneV1Config
from argonne_kit.plan.shape import ModelShape
from argonne_kit.recipe.schema import PluginSection


@attrs.frozen
class ParamCounts:
    """Unique parameters (a tied head counted once) and how they split."""

    total: int
    embedding: int
    """Input token embedding (and a learned position table)."""
    head: int
    """Untied LM head weights (0 when tied: the head is the embedding)."""
    matmul: int
    """Weights that take part in a matmul per token: every projection plus the LM head (tied or
    not); excludes embedding lookups, norm gains and biases."""
    vocab_rows: int
    """Embedding rows as built."""
    vocab_unpadded: int
    """Rows before ``pad_vocab_to_multiple_of`` (equal when not padded)."""

    @property
    def non_embedding(self) -> int:
        """Everything except the embedding tables and an untied head."""
        return self.total - self.embedding - self.head

    @property
    def total_unpadded(self) -> int:
        """The count with the vocabulary trimmed back to the tokenizer's rows (what an export holds)."""
        per_row = self.embedding // self.vocab_rows if self.vocab_rows else 0
        heads = 1 if self.head else 0
        return self.total - (self.vocab_rows - self.vocab_unpadded) * per_row * (1 + heads)


def build_meta_model(section: PluginSection, vocab_size: int | None) -> PreTrainedModel:
    """The recipe's model with meta tensors (no memory)."""
    from argonne_kit.model import build_model

    with torch.device("meta"):
        model = build_model(section, vocab_size)
    assert isinstance(model, PreTrainedModel)  # every model kind builds a transformers model
    return model


def _weight(module: torch.nn.Module | None) -> torch.Tensor | None:
    """The ``weight`` of an embedding or head module (None when the model has no such module)."""
    if module is None:
        return None
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    return weight


def count_parameters(model: PreTrainedModel, vocab_unpadded: int) -> ParamCounts:
    """Counts of a built model (meta or real)."""
    embed = _weight(model.get_input_embeddings())
    head = _weight(model.get_output_embeddings())
    assert embed is not None  # a language model has token embeddings
    tied = head is embed
    embedding = embed.numel() + sum(
        p.numel() for n, p in model.named_parameters() if "position" in n or n.startswith("wpe") or ".wpe" in n
    )
    total = sum(p.numel() for p in model.parameters())
    # the head is an nn.Linear whether tied or not, so it is counted once here
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return ParamCounts(
        total=total,
        embedding=embedding,
        head=0 if tied or head is None else head.numel(),
        matmul=linear,
        vocab_rows=embed.shape[0],
        vocab_unpadded=vocab_unpadded,
    )


def model_shape(model: PreTrainedModel) -> ModelShape:
    """The planner's view of a built model's config."""
    cfg = model.config
    if isinstance(cfg, ArgonneConfig):
        derived = cfg.derived_shape()  # KV heads, MLP width and windows by the recipe's rules
        hidden, layers, heads = cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads
        assert hidden and layers and heads  # None only before the config's __post_init__
        return ModelShape(
            vocab_size=cfg.vocab_size,
            hidden_size=hidden,
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=derived["num_key_value_heads"],
            intermediate_size=derived["intermediate_size"],
            tie_embeddings=bool(cfg.tie_word_embeddings),
            qk_norm=cfg.qk_norm,
            v_norm=cfg.v_norm,
            sandwich_norm=cfg.sandwich_norm,
            swiglu_clamp=bool(cfg.swiglu_clamp),
            layer_windows=tuple(cfg.layer_windows()),
        )
    if not isinstance(cfg, ArgonneV1Config):
        raise TypeError(f"the planner knows the Argonne model kinds, not {type(cfg).__name__}")
    return ModelShape(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.n_embd,
        num_layers=cfg.n_layer,
        num_heads=cfg.n_head,
        num_kv_heads=cfg.n_head,
        intermediate_size=4 * cfg.n_embd,
        tie_embeddings=False,
        layer_windows=(None,) * cfg.n_layer,
        family="argonne",
    )
