"""Typed TOML recipes: loading (``extends``, overrides), structuring, resolving, diffing."""

from argonne_kit.recipe.api import load_recipe, resolve_recipe, ResolvedRecipe

__all__ = ["load_recipe", "resolve_recipe", "ResolvedRecipe"]
