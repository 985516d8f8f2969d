"""``flex``: FlexAttention with a block-sparse mask (the kernel is
:class:`argonne_kit.kernels.flex.FlexAttention`)."""

from __future__ import annotations

import attrs

from argonne_kit.contracts.config import ComponentConfig
from argonne_kit.kernels.flex import FlexAttention


@attrs.define(kw_only=True)
class FlexConfig(ComponentConfig):
    """Options of the FlexAttention backend."""

    compile: bool | None = None
    """Run ``flex_attention`` through ``torch.compile`` (the fused kernel). None = compile on
    CUDA, run eagerly elsewhere (eager is the unfused reference implementation)."""


def build_flex(config: FlexConfig) -> FlexAttention:
    """The ``flex`` backend for a recipe's ``[attention]`` section."""
    return FlexAttention(compile=config.compile)
