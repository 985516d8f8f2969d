"""Built-in attention backends: ``math`` (reference), ``sdpa``, ``flex``, ``flash2`` and
``auto`` (dispatches per call to the first capable backend of ``flash2 → sdpa → math``).

Every backend implements :class:`argonne_kit.contracts.attention.AttentionBackend` with the
masking semantics of that contract (built once, in :mod:`argonne_kit.kernels.masks`), declares its capabilities
and refuses what it cannot honour exactly (D-4); none falls back on errors (D-15) and none
changes the dtype it is given (D-27). See ``docs/attention.md``.
"""

from __future__ import annotations

from argonne_kit.registry import hookimpl

from .auto import AutoAttention, AutoConfig
from .flash2 import Flash2Config, build_flash2
from .flex import FlexConfig, build_flex
from .reference import MathConfig, build_math
from .sdpa import SdpaConfig, build_sdpa


@hookimpl
def argonne_kit_register_components(register):
    register("attention", "math", build_math, MathConfig)
    register("attention", "sdpa", build_sdpa, SdpaConfig)
    register("attention", "flex", build_flex, FlexConfig)
    register("attention", "flash2", build_flash2, Flash2Config)
    register("attention", "auto", AutoAttention, AutoConfig)
