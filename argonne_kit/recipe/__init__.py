"""Typed TOML recipes: loading (``extends``, overrides), structuring, resolving, diffing."""

from argonne_kit.recipe.api import ResolvedRecipe, load_recipe, resolve_recipe

__all__ = ["ResolvedRecipe", "load_recipe", "resolve_recipe"]
