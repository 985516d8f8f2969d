"""Model kinds: the core asks a kind's config for its shape, context and HF config, and never
looks at which kind it is."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from argonne_kit.errors import RecipeError
from argonne_kit.recipe import resolve_recipe
from argonne_kit.recipe.model_sections import MODEL_KINDS, Argonne2ModelConfig, ModelConfig, model_kind


@attrs.define(kw_only=True)
class _BoxConfig(ModelConfig):
    """A model kind the core has never heard of."""

    width: int = 48
    """Width."""
    heads: int = 3
    """Heads."""
    context_tokens: int = 16
    """Context length."""

    def derive(self) -> dict[str, Any]:
        if self.width % self.heads:
            raise RecipeError(f"model.heads: {self.heads} does not divide width {self.width}")
        return {"head_dim": self.width // self.heads, "num_attention_heads": self.heads, "layer_windows": [0, 4]}

    def context(self) -> tuple[str, int]:
        return "context_tokens", self.context_tokens

    def hf_config(self, vocab_size: int | None = None, **overrides: Any) -> Any:
        return Argonne2ModelConfig(
            hidden_size=self.width, num_attention_heads=self.heads, num_hidden_layers=2
        ).hf_config(vocab_size, **overrides)

    def model_class(self) -> type:
        return Argonne2ModelConfig().model_class()


@pytest.fixture
def box_kind():
    model_kind("box")(_BoxConfig)
    yield
    del MODEL_KINDS["box"]


def _write(recipe_dir, name: str, model: str, seq_len: int = 8) -> Any:
    path = recipe_dir / name
    path.write_text(
        f'[model]\nkind = "box"\n{model}\n[data]\nkind = "tokens"\npath = "data"\n[train]\nseq_len = {seq_len}\n'
    )
    return path


def test_a_registered_kind_derives_its_shape_and_context(test_registry, recipe_dir, box_kind):
    resolved = resolve_recipe(_write(recipe_dir, "box.toml", "width = 60\nheads = 4"))
    assert resolved.derived["model"] == {"head_dim": 15, "num_attention_heads": 4, "layer_windows": [0, 4]}
    with pytest.raises(RecipeError, match="model.heads: 7 does not divide width 60"):
        resolve_recipe(_write(recipe_dir, "bad.toml", "width = 60\nheads = 7"))
    with pytest.raises(
        RecipeError, match=r"train.seq_len: 32 exceeds the model's context \(model.context_tokens = 16\)"
    ):
        resolve_recipe(_write(recipe_dir, "long.toml", "", seq_len=32))


def test_a_kind_is_registered_once():
    with pytest.raises(ValueError, match="registered twice"):
        model_kind("argonne2")(_BoxConfig)
    assert MODEL_KINDS["argonne2"] is Argonne2ModelConfig
