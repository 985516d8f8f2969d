"""``sdpa``: PyTorch's scaled-dot-product attention (the kernel is
:class:`argonne_kit.kernels.sdpa.SdpaAttention`)."""

from __future__ import annotations

from argonne_kit.kernels.sdpa import SdpaAttention

from .configs import SdpaConfig


def build_sdpa(config: SdpaConfig) -> SdpaAttention:
    """The ``sdpa`` backend for a recipe's ``[attention]`` section."""
    return SdpaAttention()
