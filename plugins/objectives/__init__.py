"""Built-in objectives plugin: ``clm``, ``sft``, ``dpo`` and ``cot``.

Each objective's implementation lives in its own module of this package; every config class lives in
the torch-free :mod:`.configs`. Registering imports only the configs: each factory
(``lazy_factory``) imports its objective's module (and with it torch) when it is called, so
resolving a recipe never loads torch. Adding an objective = a config class in :mod:`.configs`, a
module, and a ``register`` call here.
"""

from __future__ import annotations

from argonne_kit.registry import hookimpl, lazy_factory

from .configs import CLMConfig, CoTConfig, DPOConfig, SFTConfig


@hookimpl
def argonne_kit_register_components(register):
    register("objective", "clm", lazy_factory(f"{__name__}.clm:CausalLMObjective"), CLMConfig)
    register("objective", "sft", lazy_factory(f"{__name__}.sft:build"), SFTConfig)
    register("objective", "dpo", lazy_factory(f"{__name__}.dpo:build"), DPOConfig)
    register("objective", "cot", lazy_factory(f"{__name__}.cot:build"), CoTConfig)
