"""``math``: the reference attention every other backend is tested against (the kernel is
:class:`argonne_kit.kernels.math.MathAttention`)."""

from __future__ import annotations

import attrs

from argonne_kit.contracts.config import ComponentConfig
from argonne_kit.kernels.math import MathAttention


@attrs.define(kw_only=True)
class MathConfig(ComponentConfig):
    """The reference backend has no options."""


def build_math(config: MathConfig) -> MathAttention:
    """The ``math`` backend for a recipe's ``[attention]`` section."""
    return MathAttention()
