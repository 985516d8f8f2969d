"""Semantic diff of two resolved recipes.

Either side may be a recipe file, a resolved recipe written by a run, a run directory, a
checkpoint (directory or ``.pt`` file) or an exported model directory: all of them embed their
resolved recipe (D-1). Both sides are resolved with every default explicit, so a value given
directly and the same value inherited are no difference.
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
        raise RecipeError(f"{path}: no {RESOLVED_RECIPE_FILE} in this directory (expected a run "
                          f"directory, a checkpoint or an exported model)")
    if path.suffix == ".pt":
        raise RecipeError(f"{path}: single-file checkpoints carry their recipe beside them; "
                          f"pass the checkpoint directory")
    if not path.exists():
        raise RecipeError(f"not found: {path}")
    return path


def resolve_any(path: str | Path, overrides: list[str] | None = None) -> ResolvedRecipe:
    """Resolve whatever ``path`` is (recipe, run dir, checkpoint, export)."""
    recipe_path = locate_recipe(path)
    raw = load_recipe(recipe_path, overrides)
    meta = raw.data.get("meta", {})
    return resolve_raw(raw, meta=meta if isinstance(meta, dict) else {})


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def diff_resolved(a: ResolvedRecipe, b: ResolvedRecipe, *, include_meta: bool = False,
                  include_derived: bool = False) -> list[Change]:
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
    return a == b


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
