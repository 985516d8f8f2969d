"""Built-in objectives plugin: ``clm``, ``sft``, ``dpo`` and ``cot``.

Each objective's implementation lives in its own module of this package; every config class
lives in the torch-free :mod:`.configs`. Registering imports only the configs: each factory below
imports its objective's module (and with it torch) when it is called, so resolving a recipe never
loads torch. Adding an objective = a config class in :mod:`.configs`, a module, and a factory and
a ``register`` call here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from argonne_kit.registry import hookimpl

from .configs import CLMConfig, CoTConfig, DPOConfig, SFTConfig

if TYPE_CHECKING:
    from argonne_kit.contracts.objective import Objective


def build_clm(cfg: CLMConfig) -> Objective:
    """The ``clm`` objective (:class:`.clm.CausalLMObjective`)."""
    from . import clm

    return clm.CausalLMObjective(cfg)


def build_sft(config: SFTConfig) -> Objective:
    """The ``sft`` objective (:func:`.sft.build`)."""
    from . import sft

    return sft.build(config)


def build_dpo(config: DPOConfig) -> Objective:
    """The ``dpo`` objective (:func:`.dpo.build`)."""
    from . import dpo

    return dpo.build(config)


def build_cot(config: CoTConfig) -> Objective:
    """The ``cot`` objective (:func:`.cot.build`)."""
    from . import cot

    return cot.build(config)


@hookimpl
def argonne_kit_register_components(register):
    register("objective", "clm", build_clm, CLMConfig)
    register("objective", "sft", build_sft, SFTConfig)
    register("objective", "dpo", build_dpo, DPOConfig)
    register("objective", "cot", build_cot, CoTConfig)
