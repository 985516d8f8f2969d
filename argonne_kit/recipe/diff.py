"""Semantic diff of two resolved recipes.

Either side may be a recipe file, a resolved recipe written by a run, a run directory, a
checkpoint (directory or ``.pt`` file) or an exported model directory: all of them embed their
resolved recipe (D-1). Both sides are resolved with every default explicit, so a value given
directly and the same value inherited are no difference.

A side may also be a released model that embeds no recipe — a Hub repo id or a Hugging Face
directory with only ``config.json`` (:func:`diff_any`). Then the other side's ``[model]``
section is compared with that config: does this recipe build that release?
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from argonne_kit.errors import RecipeError
from argonne_kit.recipe.api import ResolvedRecipe, load_recipe, resolve_raw

#: File name of the resolved recipe inside run dirs, checkpoints and exported models.
RESOLVED_RECIPE_FILE = "resolved_recipe.toml"


@attrs.frozen
class Change:
    """One differing key: ``a``/``b`` are None when the key is absent on that side."""

    section: str
    key: str
    a: Any
    b: Any


def locate_recipe(path: str | Path) -> Path:
    """The recipe file that ``path`` stands for (see module doc)."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / RESOLVED_RECIPE_FILE, path / "final_model" / RESOLVED_RECIPE_FILE):
            if candidate.is_file():
                return candidate
        raise RecipeError(
            f"{path}: no {RESOLVED_RECIPE_FILE} in this directory (expected a run "
            f"directory, a checkpoint or an exported model)"
        )
    if path.suffix == ".pt":
        raise RecipeError(
            f"{path}: single-file checkpoints carry their recipe beside them; pass the checkpoint directory"
        )
    if not path.exists():
        raise RecipeError(f"not found: {path}")
    return path


def resolve_any(path: str | Path, overrides: list[str] | None = None) -> ResolvedRecipe:
    """Resolve whatever ``path`` is (recipe, run dir, checkpoint, export)."""
    recipe_path = locate_recipe(path)
    raw = load_recipe(recipe_path, overrides)
    meta = raw.data.get("meta", {})
    return resolve_raw(raw, meta=meta if isinstance(meta, dict) else {})


def load_side(spec: str | Path) -> ResolvedRecipe | dict[str, Any]:
    """The resolved recipe ``spec`` stands for, or — for a model that embeds none (a Hub repo id,
    a plain Hugging Face directory) — its ``config.json`` as a dict."""
    try:
        return resolve_any(spec)
    except RecipeError as exc:
        recipe_error = exc
    from argonne_kit.errors import CheckpointError
    from argonne_kit.model_source import resolve_model_source

    try:
        source = resolve_model_source(spec)
    except CheckpointError as exc:
        raise RecipeError(f"{recipe_error}; as a model: {exc}") from None
    recipe = source.resolved_recipe_path()
    if recipe is not None:
        return resolve_any(recipe)
    config = source.config_dict()
    if config is None:
        raise recipe_error
    return config


def diff_any(
    a: str | Path, b: str | Path, *, include_meta: bool = False, include_derived: bool = False
) -> list[Change]:
    """:func:`diff_resolved` of two recipe-bearing sides, or :func:`model_config_changes` when one
    side is a model without a recipe (the changes then read recipe → config, whichever side the
    recipe is on)."""
    side_a, side_b = load_side(a), load_side(b)
    if isinstance(side_a, ResolvedRecipe) and isinstance(side_b, ResolvedRecipe):
        return diff_resolved(side_a, side_b, include_meta=include_meta, include_derived=include_derived)
    if isinstance(side_a, ResolvedRecipe) and isinstance(side_b, dict):
        return model_config_changes(side_a, side_b)
    if isinstance(side_b, ResolvedRecipe) and isinstance(side_a, dict):
        return [Change(c.section, c.key, c.b, c.a) for c in model_config_changes(side_b, side_a)]
    raise RecipeError(
        f"{a} and {b} are both models without a recipe; one side must be a recipe, run, checkpoint or export"
    )


def model_config_changes(resolved: ResolvedRecipe, config: dict[str, Any]) -> list[Change]:
    """Every ``[model]`` field of ``resolved`` whose value differs from the same field of a
    release's ``config.json`` (``a`` = recipe, ``b`` = config). Fields the config does not have
    are not compared; a field the recipe leaves to derivation (None) is compared through its
    derived value when the resolve step computed one; the local window counts only where it is
    switched on."""
    section = resolved.to_dict().get("model", {})
    derived = resolved.derived.get("model", {}) if isinstance(resolved.derived, dict) else {}
    changes = []
    if "kind" in section and config.get("model_type") != section["kind"]:
        changes.append(Change("model", "kind", section["kind"], config.get("model_type")))
    for key, value in section.items():
        if key == "kind" or key not in config:
            continue
        if value is None:
            value = derived.get(key)
            if value is None:
                continue
        theirs = config[key]
        if key == "local_attention_window":
            if not (section.get("interleaved_local_attention") or config.get("interleaved_local_attention")):
                continue
            value, theirs = value or None, theirs or None
        if isinstance(value, list) and isinstance(theirs, list):
            value, theirs = list(value), list(theirs)
        if not _same(value, theirs):
            changes.append(Change("model", key, value, theirs))
    return changes


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def diff_resolved(
    a: ResolvedRecipe, b: ResolvedRecipe, *, include_meta: bool = False, include_derived: bool = False
) -> list[Change]:
    """Every key whose value differs, in section order. Derived values (consequences of the
    inputs: LR landmarks, accumulation steps…) and provenance are left out unless asked for, so a
    changed input is reported once, where it was set."""
    da, db = a.to_dict(), b.to_dict()
    for name, wanted in (("meta", include_meta), ("derived", include_derived)):
        if not wanted:
            da.pop(name, None)
            db.pop(name, None)
    fa, fb = flatten(da), flatten(db)
    keys = list(fa) + [k for k in fb if k not in fa]
    changes = []
    for key in keys:
        va, vb = fa.get(key), fb.get(key)
        if not _same(va, vb):
            section, _, rest = key.partition(".")
            changes.append(Change(section, rest, va, vb))
    return changes


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and float(a) == float(b)
    return bool(a == b)


def format_changes(changes: list[Change], name_a: str, name_b: str) -> str:
    if not changes:
        return f"no differences between {name_a} and {name_b}"
    lines = [f"--- {name_a}", f"+++ {name_b}"]
    current = None
    for change in changes:
        if change.section != current:
            current = change.section
            lines.append(f"[{current}]")
        lines.append(f"  {change.key}: {_fmt(change.a)} -> {_fmt(change.b)}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)
