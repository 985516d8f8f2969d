"""Built-in attention backends: ``math`` (reference), ``sdpa``, ``flex``, ``flash2`` and
``auto`` (dispatches per call to the first capable backend of ``flash2 → sdpa → math``).

Every backend implements :class:`argonne_kit.contracts.attention.AttentionBackend` with the
masking semantics of that contract (built once, in :mod:`argonne_kit.kernels.masks`), declares its capabilities
and refuses what it cannot honour exactly (D-4); none falls back on errors (D-15) and none
changes the dtype it is given (D-27). See ``docs/attention.md``.

Registering imports only the torch-free :mod:`.configs`: each factory below imports its backend
module (and with it torch) when it is called, so resolving a recipe never loads the kernels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from argonne_kit.registry import hookimpl

from .configs import AutoConfig, Flash2Config, FlexConfig, MathConfig, SdpaConfig

if TYPE_CHECKING:
    from argonne_kit.contracts.attention import AttentionBackend


def build_math(config: MathConfig) -> AttentionBackend:
    """The ``math`` backend (:func:`.reference.build_math`)."""
    from . import reference

    return reference.build_math(config)


def build_sdpa(config: SdpaConfig) -> AttentionBackend:
    """The ``sdpa`` backend (:func:`.sdpa.build_sdpa`)."""
    from . import sdpa

    return sdpa.build_sdpa(config)


def build_flex(config: FlexConfig) -> AttentionBackend:
    """The ``flex`` backend (:func:`.flex.build_flex`)."""
    from . import flex

    return flex.build_flex(config)


def build_flash2(config: Flash2Config) -> AttentionBackend:
    """The ``flash2`` backend (:func:`.flash2.build_flash2`)."""
    from . import flash2

    return flash2.build_flash2(config)


def build_auto(config: AutoConfig | None = None) -> AttentionBackend:
    """The ``auto`` backend (:class:`.auto.AutoAttention`)."""
    from . import auto

    return auto.AutoAttention(config)


@hookimpl
def argonne_kit_register_components(register):
    register("attention", "math", build_math, MathConfig)
    register("attention", "sdpa", build_sdpa, SdpaConfig)
    register("attention", "flex", build_flex, FlexConfig)
    register("attention", "flash2", build_flash2, Flash2Config)
    register("attention", "auto", build_auto, AutoConfig)
