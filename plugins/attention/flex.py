"""``flex``: FlexAttention with a block-sparse mask (the kernel is
:class:`argonne_kit.kernels.flex.FlexAttention`)."""

from __future__ import annotations

from argonne_kit.kernels.flex import FlexAttention

from .configs import FlexConfig


def build_flex(config: FlexConfig) -> FlexAttention:
    """The ``flex`` backend for a recipe's ``[attention]`` section."""
    return FlexAttention(compile=config.compile)
