"""The recipe schema: which sections exist, which are core-owned and which pick a plugin."""

from __future__ import annotations

from typing import Any

import attrs

from argonne_kit.recipe.sections import (
    CheckpointConfig,
    EvalConfig,
    InitConfig,
    LoggingConfig,
    OptimConfig,
    RunConfig,
    SampleConfig,
    TokenizerConfig,
    TrainConfig,
)


@attrs.define
class PluginSection:
    """A section that picks an implementation with ``kind``; ``config`` is an instance of the
    chosen component's config class."""

    kind: str
    config: Any


#: Sections that pick a registered component: section → (registry kind, default name or None
#: when the section is optional and absent by default).
PLUGIN_SECTIONS: dict[str, tuple[str, str | None]] = {
    "attention": ("attention", "auto"),
    "data": ("data", None),
    "val_data": ("data", None),
    "objective": ("objective", "clm"),
    "parallel": ("parallel", "single"),
    "schedule": ("schedule", "constant"),
}

#: Core-owned sections and their config classes.
CORE_SECTIONS: dict[str, type] = {
    "tokenizer": TokenizerConfig,
    "optim": OptimConfig,
    "train": TrainConfig,
    "checkpoint": CheckpointConfig,
    "run": RunConfig,
    "init": InitConfig,
    "sample": SampleConfig,
    "eval": EvalConfig,
    "logging": LoggingConfig,
}

#: Sections written by argonne_kit itself into resolved recipes; ignored when read back
#: (``derived`` is recomputed, ``meta`` records provenance).
GENERATED_SECTIONS = ("derived", "meta")

#: Order of sections in printed recipes.
SECTION_ORDER = (
    "model",
    "tokenizer",
    "attention",
    "data",
    "val_data",
    "objective",
    "parallel",
    "optim",
    "schedule",
    "train",
    "checkpoint",
    "run",
    "init",
    "sample",
    "eval",
    "logging",
)

DEFAULT_MODEL_KIND = "argonne2"


@attrs.define
class Recipe:
    """A structured recipe: every section present, every default explicit."""

    model: PluginSection
    tokenizer: TokenizerConfig
    attention: PluginSection
    data: PluginSection | None
    val_data: PluginSection | None
    objective: PluginSection
    parallel: PluginSection
    optim: OptimConfig
    schedule: PluginSection
    train: TrainConfig
    checkpoint: CheckpointConfig
    run: RunConfig
    init: InitConfig
    sample: SampleConfig
    eval: EvalConfig
    logging: LoggingConfig
