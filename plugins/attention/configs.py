"""Config classes of the built-in attention backends.

Torch-free on purpose: resolving a recipe structures ``[attention]`` into one of these without
importing the kernels (the backend modules import torch; the package registers factories that
import them only when a backend is built).
"""

from __future__ import annotations

import attrs

from argonne_kit.contracts.config import ComponentConfig


@attrs.define(kw_only=True)
class MathConfig(ComponentConfig):
    """The reference backend has no options."""


@attrs.define(kw_only=True)
class SdpaConfig(ComponentConfig):
    """The SDPA backend has no options; PyTorch chooses the fused kernel."""


@attrs.define(kw_only=True)
class FlexConfig(ComponentConfig):
    """Options of the FlexAttention backend."""

    compile: bool | None = None
    """Run ``flex_attention`` through ``torch.compile`` (the fused kernel). None = compile on
    CUDA, run eagerly elsewhere (eager is the unfused reference implementation)."""


@attrs.define(kw_only=True)
class Flash2Config(ComponentConfig):
    """Options of the flash-attn 2 backend."""

    deterministic: bool = False
    """Use flash-attn's deterministic backward (slower; bitwise-reproducible gradients)."""


@attrs.define(kw_only=True)
class AutoConfig(ComponentConfig):
    """``auto`` has no options: the preference order is ``AUTO_PREFERENCE`` (flash2 → sdpa → math)."""
