"""``math``: the reference attention every other backend is tested against (the kernel is
:class:`argonne_kit.kernels.math.MathAttention`)."""

from __future__ import annotations

from argonne_kit.kernels.math import MathAttention

from .configs import MathConfig


def build_math(config: MathConfig) -> MathAttention:
    """The ``math`` backend for a recipe's ``[attention]`` section."""
    return MathAttention()
