"""Loading the model to evaluate."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import torch

from argonne_kit.model_source import ModelSource

if TYPE_CHECKING:
    from argonne_kit.recipe.api import ResolvedRecipe


@attrs.define
class LoadedModel:
    """A model ready to score, its tokenizer and (when the model carries one) its resolved recipe."""

    model: torch.nn.Module
    tokenizer: object
    resolved: ResolvedRecipe | None
    path: str


def load_model_for_eval(source: ModelSource, device: str = "cpu") -> LoadedModel:
    """The model, tokenizer and recipe of a MODEL located by the kit's one resolver
    (:mod:`argonne_kit.model_source`: Hub id, export, run, checkpoint or original ``.pt``)."""
    model = source.load_model(dtype=torch.float32, device=device)
    return LoadedModel(
        model=model.eval(), tokenizer=source.load_tokenizer(), resolved=source.resolved_recipe(), path=str(source.path)
    )
