"""RoPE θ and context of a chained stage come from the model it starts from (D-26).

The original CoT-SFT rebuilt the rotary embeddings with ``--rope_theta`` (default 1e4) whatever
the checkpoint said, so a 3.x/4.0 model (θ = 1e6) was silently fine-tuned with the wrong
positions unless the launcher remembered the flag. Here a stage that starts from a model
(``[init] from``) takes ``rope_theta`` and ``max_position_embeddings`` from that model's own
config unless the stage's recipe sets them explicitly (in the file, a file it extends, or on the
command line); an explicit value that differs is kept and reported.

How the runner uses it, before building the model (``init`` = the located init source)::

    init_config = read_init_model_config(init.kind, init.path)
    explicit = explicit_model_keys(raw_recipe)           # from the RawRecipe's provenance
    model_cfg, notes = inherit_position_settings(recipe.model.config, init_config, explicit)
    for note in notes: log(note)
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from argonne_kit.errors import CheckpointError

#: Model fields a chained stage inherits from its init model unless the recipe sets them.
INHERITED_FIELDS = ("rope_theta", "max_position_embeddings")
RESOLVED_RECIPE_FILE = "resolved_recipe.toml"


def explicit_model_keys(raw) -> set[str]:
    """Top-level ``[model]`` keys a recipe (any file of its ``extends`` chain, or an override)
    actually wrote, from a :class:`~argonne_kit.recipe.load.RawRecipe`'s provenance."""
    return {key.split(".", 1)[1] for key in raw.origin if key.startswith("model.") and key.count(".") == 1}


def read_init_model_config(kind: str, path: str | Path) -> dict[str, Any] | None:
    """The init model's settings: ``config.json`` of a Hugging Face directory, or the ``[model]``
    section of the resolved recipe a checkpoint of ours embeds; None for an original ``.pt``
    (its config is the recipe's to give)."""
    path = Path(path)
    try:
        if kind == "hf":
            return json.loads((path / "config.json").read_text())
        if kind == "checkpoint":
            return tomllib.loads((path / RESOLVED_RECIPE_FILE).read_text()).get("model")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"init.from: cannot read the model settings of {path}: {exc}") from None
    return None


def inherit_position_settings(
    model_config: Any, init_config: Mapping[str, Any] | None, explicit: set[str]
) -> tuple[Any, list[str]]:
    """``model_config`` (an attrs ``[model]`` config) with the :data:`INHERITED_FIELDS` of
    ``init_config`` unless ``explicit``, and one note per value taken or explicitly overridden."""
    if not init_config:
        return model_config, []
    changes: dict[str, Any] = {}
    notes: list[str] = []
    for name in INHERITED_FIELDS:
        if name not in init_config or not hasattr(model_config, name):
            continue
        theirs, ours = init_config[name], getattr(model_config, name)
        if theirs is None or theirs == ours:
            continue
        if name in explicit:
            notes.append(
                f"model.{name}: the recipe sets {ours!r}; the init model was trained with {theirs!r} "
                f"(explicit override kept)"
            )
        else:
            changes[name] = type(ours)(theirs) if ours is not None else theirs
            notes.append(f"model.{name}: {theirs!r} from the init model (the recipe did not set it; D-26)")
    return (attrs.evolve(model_config, **changes) if changes else model_config), notes
