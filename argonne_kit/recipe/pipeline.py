"""Pipeline files: stage recipes that one ``argonne-kit run`` runs in order.

    # recipes/quickstart_chat.toml
    description = "SFT then DPO of the quickstart model"

    [[stage]]
    recipe = "quickstart_sft.toml"           # relative to this file

    [[stage]]
    recipe = "quickstart_dpo.toml"
    overrides = ["train.max_steps=20"]       # optional, applied to this stage only

A TOML file is a pipeline when its top level holds ``[[stage]]`` tables; nothing else but a
``description`` may sit beside them (a pipeline is not a recipe). Each stage is an ordinary
recipe and chains to the one before it through its own ``[init] from`` — the pipeline adds no
hidden wiring, so every stage can still be run, resolved and diffed on its own. Command-line
overrides apply to every stage, after the stage's own; one prefixed with a stage's number or
recipe name applies to that stage only (``2:objective.beta=0.2``, ``quickstart_dpo:train.max_steps=5``).

Re-running a pipeline after an interruption skips each stage whose run directory already holds
a ``final_model/`` (written only when a stage completed, D-25) and resumes the interrupted stage
from its checkpoints (``run.resume``).
"""

from __future__ import annotations

from pathlib import Path

import attrs

from argonne_kit.errors import RecipeError
from argonne_kit.recipe.load import read_toml

PIPELINE_KEYS = frozenset({"stage", "description"})


@attrs.frozen
class Stage:
    """One stage of a pipeline file."""

    index: int
    """Position in the pipeline, from 1."""
    recipe: Path
    """The stage's recipe file (resolved against the pipeline file's directory)."""
    overrides: tuple[str, ...]
    """Dotted overrides for this stage only (before the command line's)."""

    @property
    def label(self) -> str:
        return f"stage {self.index} ({self.recipe.name})"


def load_pipeline(path: str | Path) -> list[Stage] | None:
    """The stages of a pipeline file, or None when ``path`` is anything else (a recipe, a run
    directory…) — those are left to the recipe loader and its errors."""
    path = Path(path)
    if path.suffix != ".toml" or not path.is_file():
        return None
    data = read_toml(path)
    if "stage" not in data:
        return None
    stray = sorted(set(data) - PIPELINE_KEYS)
    if stray:
        raise RecipeError(
            f"{path}: a pipeline file holds only [[stage]] tables and a description; "
            f"move {', '.join(stray)} into the stage recipes"
        )
    tables = data["stage"]
    if not isinstance(tables, list) or not tables:
        raise RecipeError(f"{path}: stage: expected one or more [[stage]] tables")
    stages = []
    for index, table in enumerate(tables, start=1):
        where = f"{path}: stage {index}"
        if not isinstance(table, dict) or not isinstance(table.get("recipe"), str):
            raise RecipeError(f'{where}: needs recipe = "FILE.toml"')
        unknown = sorted(set(table) - {"recipe", "overrides"})
        if unknown:
            raise RecipeError(f"{where}: unknown key(s) {', '.join(unknown)} (known: recipe, overrides)")
        overrides = table.get("overrides", [])
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise RecipeError(f'{where}: overrides: expected a list of "section.key=value" strings')
        recipe = path.parent / table["recipe"]
        if not recipe.is_file():
            raise RecipeError(f"{where}: recipe not found: {recipe}")
        if recipe.suffix == ".toml" and "stage" in read_toml(recipe):
            raise RecipeError(f"{where}: {recipe} is itself a pipeline; list its stages here instead")
        stages.append(Stage(index=index, recipe=recipe, overrides=tuple(overrides)))
    return stages


def stage_overrides(stages: list[Stage], cli: list[str]) -> list[list[str]]:
    """Each stage's overrides: its own, then the command line's — unprefixed ones for every
    stage, ``N:key=value`` / ``NAME:key=value`` for stage N or the stage whose recipe is NAME.toml."""
    out = [list(stage.overrides) for stage in stages]
    names = ", ".join(f"{s.index} or {s.recipe.stem}" for s in stages)
    for override in cli:
        key = override.split("=", 1)[0]
        if ":" not in key:
            for own in out:
                own.append(override)
            continue
        selector, rest = override.split(":", 1)
        chosen = [i for i, s in enumerate(stages) if selector in (str(s.index), s.recipe.stem)]
        if not chosen:
            raise RecipeError(f"command line: {override!r}: no stage {selector!r} in this pipeline (stages: {names})")
        for i in chosen:
            out[i].append(rest)
    return out
