"""Built-in attention backends: ``math`` (reference), ``sdpa``, ``flex``, ``flash2`` and ``auto``
(dispatches per call to the first capable backend of ``flash2 → sdpa → math``).

Every backend implements :class:`argonne_kit.contracts.attention.AttentionBackend` with the masking
semantics of that contract (built once, in :mod:`argonne_kit.kernels.masks`), declares its
capabilities and refuses what it cannot honour exactly (D-4); none falls back on errors (D-15) and
none changes the dtype it is given (D-27). See ``docs/attention.md``.

Registering imports only the torch-free :mod:`.configs`: each factory (``lazy_factory``) imports its
backend module (and with it torch) when it is called, so resolving a recipe never loads the kernels.
"""

from __future__ import annotations

from argonne_kit.registry import hookimpl, lazy_factory

from .configs import AutoConfig, Flash2Config, FlexConfig, MathConfig, SdpaConfig


@hookimpl
def argonne_kit_register_components(register):
    register("attention", "math", lazy_factory(f"{__name__}.reference:build_math"), MathConfig)
    register("attention", "sdpa", lazy_factory(f"{__name__}.sdpa:build_sdpa"), SdpaConfig)
    register("attention", "flex", lazy_factory(f"{__name__}.flex:build_flex"), FlexConfig)
    register("attention", "flash2", lazy_factory(f"{__name__}.flash2:build_flash2"), Flash2Config)
    register("attention", "auto", lazy_factory(f"{__name__}.auto:AutoAttention"), AutoConfig)
