"""``sdpa``: PyTorch's scaled-dot-product attention (the kernel is
:class:`argonne_kit.kernels.sdpa.SdpaAttention`)."""

from __future__ import annotations

import attrs

from argonne_kit.contracts.config import ComponentConfig
from argonne_kit.kernels.sdpa import SdpaAttention


@attrs.define(kw_only=True)
class SdpaConfig(ComponentConfig):
    """The SDPA backend has no options; PyTorch chooses the fused kernel."""


def build_sdpa(config: SdpaConfig) -> SdpaAttention:
    """The ``sdpa`` backend for a recipe's ``[attention]`` section."""
    return SdpaAttention()
