"""Recipe ``[model]`` section → Hugging Face config and model.

The section's config (a :class:`~argonne_kit.recipe.model_sections.ModelConfig` of its kind)
builds both; the shape it derives in the resolve step is the shape of the model built here,
because the HF config derives it by the same rules (:mod:`argonne_kit.model_shape`).
"""

from __future__ import annotations

from typing import Any

from argonne_kit.model.hf import ArgonneHFMixin
from argonne_kit.recipe.model_sections import ModelConfig
from argonne_kit.recipe.schema import PluginSection


def build_config(section: PluginSection | ModelConfig, vocab_size: int | None = None, **overrides: Any) -> Any:
    """The HF config for a ``[model]`` section (a ``PluginSection`` or its config object).

    ``vocab_size`` is the tokenizer's length; the section's explicit ``vocab_size`` wins but
    must have room for every token id. ``overrides`` are further config fields
    (``eos_token_id``, ``attn_backend``…).
    """
    return _model_config(section).hf_config(vocab_size, **overrides)


def build_model(
    section: PluginSection | ModelConfig, vocab_size: int | None = None, **overrides: Any
) -> ArgonneHFMixin:
    """A freshly initialised model (original.md §1.9 / §1.1 init) for a ``[model]`` section. Build
    it under ``torch.device("meta")`` to count parameters without allocating them."""
    config = _model_config(section)
    return config.model_class()(config.hf_config(vocab_size, **overrides))


def _model_config(section: PluginSection | ModelConfig) -> ModelConfig:
    config = section.config if isinstance(section, PluginSection) else section
    if not isinstance(config, ModelConfig):
        raise TypeError(f"not a [model] section: {section!r}")
    return config
