"""Loading the model to evaluate."""

from __future__ import annotations

import attrs
import torch

from argonne_kit.model_source import ModelSource


@attrs.define
class LoadedModel:
    """A model ready to score, its tokenizer and (when the model carries one) its resolved recipe."""

    model: torch.nn.Module
    tokenizer: object
    resolved: object | None
    path: str


def load_model_for_eval(source: ModelSource, device: str = "cpu") -> LoadedModel:
    """The model, tokenizer and recipe of a MODEL located by the kit's one resolver
    (:mod:`argonne_kit.model_source`: Hub id, export, run, checkpoint or original ``.pt``)."""
    model = source.load_model(dtype=torch.float32, device=device)
    return LoadedModel(
        model=model.eval(), tokenizer=source.load_tokenizer(), resolved=source.resolved_recipe(), path=str(source.path)
    )
