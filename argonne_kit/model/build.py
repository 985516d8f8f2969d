"""Recipe ``[model]`` section → Hugging Face config and model.

The trainer calls :func:`build_model` with the resolved recipe's model section, the derived
values of the resolve step (``resolved.derived`` or its ``"model"`` part) and the tokenizer's
length.
"""

from __future__ import annotations

import attrs
from torch import nn

from argonne_kit.errors import RecipeError
from argonne_kit.model.config import ArgonneConfig, ArgonneV1Config, round_up
from argonne_kit.model.legacy import ArgonneV1ForCausalLM
from argonne_kit.model.modeling import ArgonneForCausalLM
from argonne_kit.recipe.model_sections import Argonne1ModelConfig, Argonne2ModelConfig


def build_config(
    section, derived: dict | None = None, vocab_size: int | None = None, **overrides
) -> ArgonneConfig | ArgonneV1Config:
    """The HF config for a ``[model]`` section (a ``PluginSection`` or its config object).

    ``vocab_size`` is the tokenizer's length; the section's explicit ``vocab_size`` wins but
    must have room for every token id. ``pad_vocab_to_multiple_of`` rounds the embedding rows
    up (FP8 training). ``overrides`` are further config fields (``eos_token_id``,
    ``attn_backend``…).
    """
    fields = attrs.asdict(getattr(section, "config", section))
    vocab = _vocab_size(fields.pop("vocab_size"), vocab_size)
    if isinstance(getattr(section, "config", section), Argonne2ModelConfig):
        vocab = round_up(vocab, fields.pop("pad_vocab_to_multiple_of") or 1)
        config = ArgonneConfig(vocab_size=vocab, **fields, **overrides)
        if derived:
            _check_derived(config, derived)
        return config
    if isinstance(getattr(section, "config", section), Argonne1ModelConfig):
        return ArgonneV1Config(vocab_size=vocab, **fields, **overrides)
    raise TypeError(f"not a [model] section: {section!r}")


def build_model(section, derived: dict | None = None, vocab_size: int | None = None, **overrides) -> nn.Module:
    """A freshly initialised model (original.md §1.9 / original.md §1.1 init) for a ``[model]`` section. Build
    it under ``torch.device("meta")`` to count parameters without allocating them."""
    config = build_config(section, derived, vocab_size, **overrides)
    cls = ArgonneForCausalLM if isinstance(config, ArgonneConfig) else ArgonneV1ForCausalLM
    return cls(config)


def _vocab_size(section_vocab: int | None, tokenizer_vocab: int | None) -> int:
    if section_vocab is None and tokenizer_vocab is None:
        raise RecipeError("model.vocab_size: not set, and no tokenizer length was given")
    if section_vocab is None:
        return tokenizer_vocab
    if tokenizer_vocab is not None and tokenizer_vocab > section_vocab:
        raise RecipeError(
            f"model.vocab_size: {section_vocab} rows cannot hold the tokenizer's {tokenizer_vocab} tokens"
        )
    return section_vocab


def _check_derived(config: ArgonneConfig, derived: dict) -> None:
    """The resolve step and the model must agree on every derived shape. ``derived`` is
    ``resolved.derived["model"]`` or the whole ``resolved.derived``."""
    derived = derived.get("model", derived)
    windows = [w or 0 for w in config.layer_windows()]
    ours = {
        "head_dim": config.head_dim,
        "num_key_value_heads": config.num_key_value_heads,
        "intermediate_size": config.intermediate_size,
        "layer_windows": windows,
    }
    for key, value in ours.items():
        if key in derived and derived[key] != value:
            raise RecipeError(f"model: resolved {key}={derived[key]!r} but the model config gives {value!r}")
