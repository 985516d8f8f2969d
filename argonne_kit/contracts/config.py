"""Config contract: the base class of every component's config.

A component's recipe section (minus ``kind``) is structured into its config class, an ``attrs``
class with a docstring on every field. The class subclasses :class:`ComponentConfig` (a parallel
strategy's config: :class:`ParallelConfig`), which declares the only methods the core calls on a
config; override them where the component needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


class ComponentConfig:
    """Base of a component's config class (plain class: subclasses add ``@attrs.define``)."""

    #: Keys a user might write for a field of this config, or that moved to another section:
    #: written key → the canonical ``section.key``, offered in the unknown-key error.
    __recipe_hints__: ClassVar[dict[str, str]] = {}

    def resolve(self, resolved: Any) -> None:
        """Cross-section checks, run once in the resolve step with the whole
        :class:`~argonne_kit.recipe.api.ResolvedRecipe` (``resolved.recipe.<section>``,
        ``resolved.derived``, ``resolved.notes``). Raise :class:`~argonne_kit.errors.RecipeError`
        for an impossible combination. Must run nothing and read no data. Default: no checks."""


@dataclass(frozen=True)
class MemoryLayout:
    """How a strategy places the model's state on each process, as the memory planner
    (``argonne-kit plan``) counts it."""

    tensor_parallel: int = 1
    """Ranks that split each block's weights and activations (tensor parallel)."""
    parameter_shards: int = 1
    """Ranks over which parameters, gradients and optimizer state are sharded (FSDP)."""
    gradient_buckets: bool = False
    """A second, full-size copy of the gradients in communication buckets (DDP's reducer)."""


class ParallelConfig(ComponentConfig):
    """Base of a parallel strategy's config."""

    def data_parallel_world(self, nproc: int) -> int:
        """How many of ``nproc`` processes are data-parallel ranks (the batch math counts these;
        tensor-parallel ranks of one group share a batch). Default: all of them."""
        return nproc

    def max_processes(self) -> int | None:
        """The most processes this strategy runs on (None = any number). Default: any."""
        return None

    def memory_layout(self, nproc: int) -> MemoryLayout:
        """How the model's state is placed on each of ``nproc`` processes (the planner's memory
        model). Default: a full replica per process and nothing else."""
        return MemoryLayout()


class DataConfig(ComponentConfig):
    """Base a data source's config may subclass (instead of ``ComponentConfig``) to tell
    ``argonne-kit plan`` the size of the data without building the source."""

    def planned_tokens(self, recipe_dir: str) -> int | None:
        """Tokens one epoch holds when that is known without tokenizing anything (e.g. from a
        shard manifest), relative paths resolving against ``recipe_dir``; None = unknown
        (the planner then asks for ``--data-tokens``). Must be cheap and never raise for data
        that is absent. Default: None."""
        return None
