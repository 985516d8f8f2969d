"""Exact parameter counts of a recipe's model, from the model itself built on the meta device."""

from __future__ import annotations

import attrs
import torch

from argonne_kit.plan.shape import ModelShape


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


def build_meta_model(section, vocab_size: int | None) -> torch.nn.Module:
    """The recipe's model with meta tensors (no memory)."""
    from argonne_kit.model import build_model

    with torch.device("meta"):
        return build_model(section, vocab_size)


def count_parameters(model: torch.nn.Module, vocab_unpadded: int) -> ParamCounts:
    """Counts of a built model (meta or real)."""
    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embed.weight
    embedding = embed.weight.numel() + sum(
        p.numel() for n, p in model.named_parameters() if "position" in n or n.startswith("wpe") or ".wpe" in n
    )
    total = sum(p.numel() for p in model.parameters())
    # the head is an nn.Linear whether tied or not, so it is counted once here
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return ParamCounts(
        total=total,
        embedding=embedding,
        head=0 if tied or head is None else head.weight.numel(),
        matmul=linear,
        vocab_rows=embed.weight.shape[0],
        vocab_unpadded=vocab_unpadded,
    )


def model_shape(model: torch.nn.Module) -> ModelShape:
    """The planner's view of a built model's config."""
    cfg = model.config
    if getattr(cfg, "model_type", "") == "argonne2":
        return ModelShape(
            vocab_size=cfg.vocab_size,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_hidden_layers,
            num_heads=cfg.num_attention_heads,
            num_kv_heads=cfg.num_key_value_heads,
            intermediate_size=cfg.intermediate_size,
            tie_embeddings=bool(cfg.tie_word_embeddings),
            qk_norm=cfg.qk_norm,
            v_norm=cfg.v_norm,
            sandwich_norm=cfg.sandwich_norm,
            swiglu_clamp=bool(cfg.swiglu_clamp),
            layer_windows=tuple(cfg.layer_windows()),
        )
    return ModelShape(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_hidden_layers,
        num_heads=cfg.num_attention_heads,
        num_kv_heads=cfg.num_attention_heads,
        intermediate_size=4 * cfg.hidden_size,
        tie_embeddings=False,
        layer_windows=(None,) * cfg.num_hidden_layers,
        family="argonne",
    )
