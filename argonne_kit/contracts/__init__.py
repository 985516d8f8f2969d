"""The plugin contracts (attention, objective, parallel, data, schedule) and the config base.

Each kind has one small abstract interface here. Plugins implement them; the core and the
trainer only ever talk to these interfaces, obtained through :mod:`argonne_kit.registry`, and call
nothing on a plugin object that these modules do not declare.
"""

#: The kit's public API for plugins: the only ``argonne_kit`` modules a plugin imports (the
#: contracts plus documented helpers, listed in docs/plugins.md); everything else is internal.
PUBLIC_API = (
    "argonne_kit.contracts.attention",
    "argonne_kit.contracts.config",
    "argonne_kit.contracts.data",
    "argonne_kit.contracts.objective",
    "argonne_kit.contracts.parallel",
    "argonne_kit.contracts.schedule",
    "argonne_kit.contracts.trainer",
    "argonne_kit.errors",
    "argonne_kit.registry",
    "argonne_kit.recipe.convert",
    "argonne_kit.recipe.validators",
    "argonne_kit.attention",
    "argonne_kit.loss",
    "argonne_kit.chunked_loss",
    "argonne_kit.kernels",
    "argonne_kit.kernels.inputs",
    "argonne_kit.kernels.math",
    "argonne_kit.kernels.sdpa",
    "argonne_kit.kernels.flex",
    "argonne_kit.kernels.flash2",
    "argonne_kit.safe_io",
    "argonne_kit.model.loading",
    "argonne_kit.data.order",
    "argonne_kit.data.manifest",
    "argonne_kit.data.preprocess",
    "argonne_kit.data.tokenizer",
    "argonne_kit.data.embedded",
)
