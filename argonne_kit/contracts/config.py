"""Config contract: the base class of every component's config.

A component's recipe section (minus ``kind``) is structured into its config class, an ``attrs``
class with a docstring on every field. The class subclasses :class:`ComponentConfig` (a parallel
strategy's config: :class:`ParallelConfig`), which declares the only methods the core calls on a
config; override them where the component needs them.
"""

from __future__ import annotations

from typing import Any


class ComponentConfig:
    """Base of a component's config class (plain class: subclasses add ``@attrs.define``)."""

    def resolve(self, resolved: Any) -> None:
        """Cross-section checks, run once in the resolve step with the whole
        :class:`~argonne_kit.recipe.api.ResolvedRecipe` (``resolved.recipe.<section>``,
        ``resolved.derived``, ``resolved.notes``). Raise :class:`~argonne_kit.errors.RecipeError`
        for an impossible combination. Must run nothing and read no data. Default: no checks."""


class ParallelConfig(ComponentConfig):
    """Base of a parallel strategy's config."""

    def data_parallel_world(self, nproc: int) -> int:
        """How many of ``nproc`` processes are data-parallel ranks (the batch math counts these;
        tensor-parallel ranks of one group share a batch). Default: all of them."""
        return nproc
