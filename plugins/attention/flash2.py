"""``flash2``: flash-attn 2 (the kernel is :class:`argonne_kit.kernels.flash2.Flash2Attention`;
``pip install 'argonne-kit[flash]'`` on a CUDA machine)."""

from __future__ import annotations

from argonne_kit.kernels.flash2 import Flash2Attention

from .configs import Flash2Config


def build_flash2(config: Flash2Config) -> Flash2Attention:
    """The ``flash2`` backend for a recipe's ``[attention]`` section."""
    return Flash2Attention(deterministic=config.deterministic)
