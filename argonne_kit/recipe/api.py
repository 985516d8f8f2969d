"""Load → structure → resolve, and the resolved recipe as TOML."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import tomli_w

from argonne_kit.errors import RecipeError, suggest
from argonne_kit.recipe.convert import FieldError, structure, unstructure
from argonne_kit.recipe.load import RawRecipe, apply_overrides, read_recipe_file
from argonne_kit.recipe.model_sections import MODEL_KINDS
from argonne_kit.recipe.schema import (
    CORE_SECTIONS,
    DEFAULT_MODEL_KIND,
    GENERATED_SECTIONS,
    PLUGIN_SECTIONS,
    SECTION_ORDER,
    PluginSection,
    Recipe,
)


@attrs.define
class ResolvedRecipe:
    """A structured recipe plus the values the resolve step derived from it.

    ``derived`` maps section → {key: value} (e.g. ``derived["train"]["grad_accum_steps"]``);
    ``notes`` are human-readable lines the resolve step wants printed (LR landmarks, warnings);
    ``meta`` is provenance added by a run (versions, git revision) and is empty for a file.
    """

    recipe: Recipe
    derived: dict[str, dict[str, Any]]
    notes: list[str]
    source: str
    base_dir: Path
    meta: dict[str, Any] = attrs.field(factory=dict)
    raw: RawRecipe | None = attrs.field(default=None, repr=False, eq=False)
    """The merged recipe data with its provenance (which file or override set each key); the
    run uses it to tell keys a recipe set from defaults (D-26 inheritance of RoPE θ/context)."""

    def to_dict(self, *, with_generated: bool = True) -> dict[str, Any]:
        """Plain nested data in section order (``derived``/``meta`` last)."""
        out: dict[str, Any] = {}
        for name in SECTION_ORDER:
            section = getattr(self.recipe, name)
            if section is None:
                continue
            if isinstance(section, PluginSection):
                out[name] = {"kind": section.kind, **unstructure(section.config)}
            else:
                out[name] = unstructure(section)
        if with_generated:
            if self.derived:
                out["derived"] = copy.deepcopy(self.derived)
            if self.meta:
                out["meta"] = copy.deepcopy(self.meta)
        return out

    def to_toml(self, *, with_generated: bool = True) -> str:
        return tomli_w.dumps(self.to_dict(with_generated=with_generated))


#: Cross-section resolvers run in registration order: ``fn(resolved) -> None``. They fill
#: ``resolved.derived`` and ``resolved.notes`` and raise RecipeError for impossible combinations.
RESOLVERS: list[Callable[[ResolvedRecipe], None]] = []


def resolver(fn: Callable[[ResolvedRecipe], None]) -> Callable[[ResolvedRecipe], None]:
    """Register a cross-section resolve step (core modules use this)."""
    RESOLVERS.append(fn)
    return fn


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> RawRecipe:
    """Read a recipe file with its ``extends`` chain and apply ``KEY=VALUE`` overrides."""
    raw = read_recipe_file(path)
    return apply_overrides(raw, list(overrides or []))


def structure_recipe(raw: RawRecipe) -> Recipe:
    """Structure merged recipe data into a :class:`Recipe` (errors name file and dotted path)."""
    from argonne_kit.registry import get_registry

    registry = get_registry()
    data = {k: v for k, v in raw.data.items() if k not in GENERATED_SECTIONS}
    known = ["model", *CORE_SECTIONS, *PLUGIN_SECTIONS]
    for key in data:
        if key not in known:
            raise RecipeError(f"{raw.origin_of(key)}: {key}: unknown section{suggest(key, known)}")
    sections: dict[str, Any] = {}
    try:
        model = dict(data.get("model", {}))
        kind = model.pop("kind", DEFAULT_MODEL_KIND)
        if kind not in MODEL_KINDS:
            raise FieldError(
                "model.kind",
                f"unknown model kind {kind!r}{suggest(str(kind), MODEL_KINDS)}; known: {', '.join(MODEL_KINDS)}",
            )
        sections["model"] = PluginSection(kind, structure(model, MODEL_KINDS[kind], "model"))
        for name, cls in CORE_SECTIONS.items():
            sections[name] = structure(data.get(name, {}), cls, name)
        for name, (registry_kind, default) in PLUGIN_SECTIONS.items():
            section = data.get(name)
            if section is None and default is None:
                sections[name] = None
                continue
            section = dict(section or {})
            if not isinstance(section, dict):
                raise FieldError(name, f"expected a table, got {section!r}")
            kind = section.pop("kind", default)
            if kind is None:
                raise FieldError(
                    f"{name}.kind", f"required key is missing; registered: {', '.join(registry.names(registry_kind))}"
                )
            if not isinstance(kind, str):
                raise FieldError(f"{name}.kind", f"expected str, got {kind!r}")
            if not registry.has(registry_kind, kind):
                known_names = registry.names(registry_kind)
                raise FieldError(
                    f"{name}.kind",
                    f"no {registry_kind} plugin named {kind!r}"
                    f"{suggest(kind, known_names)}; registered: {', '.join(known_names) or 'none'}",
                )
            component = registry.get(registry_kind, kind)
            sections[name] = PluginSection(kind, structure(section, component.config_cls, name))
    except FieldError as exc:
        raise RecipeError(f"{raw.origin_of(exc.path)}: {exc.path}: {exc.message}") from None
    return Recipe(**sections)


def resolve_recipe(path: str | Path, overrides: list[str] | None = None) -> ResolvedRecipe:
    """The one resolve step: load, structure, then run every resolver (derived values and
    cross-section checks). Runs nothing and touches no data."""
    raw = load_recipe(path, overrides)
    return resolve_raw(raw)


def resolve_raw(raw: RawRecipe, meta: dict[str, Any] | None = None) -> ResolvedRecipe:
    import argonne_kit.recipe.resolvers  # noqa: F401  (registers the core resolvers)

    recipe = structure_recipe(raw)
    base_dir = raw.path.parent if raw.path else Path(".")
    resolved = ResolvedRecipe(recipe, {}, [], str(raw.path or "<recipe>"), base_dir, dict(meta or {}), raw)
    for fn in RESOLVERS:
        try:
            fn(resolved)
        except RecipeError as exc:
            raise RecipeError(raw.locate(str(exc))) from None
    for name in PLUGIN_SECTIONS:
        section = getattr(recipe, name)
        if section is not None:
            try:
                section.config.resolve(resolved)
            except RecipeError as exc:
                raise RecipeError(f"{raw.origin_of(name)}: {exc}") from None
    return resolved
