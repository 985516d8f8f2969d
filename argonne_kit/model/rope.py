"""Rotary position embedding (original.md §2.5): rotate-half convention, angles in fp32.

``inv_freq`` is a non-persistent buffer: it is never in a checkpoint, so ``from_pretrained``
(which builds the model on the meta device in transformers 5) leaves it unset. The model's
``_init_weights`` calls :meth:`RotaryEmbedding.reset_inv_freq`, which transformers runs after
loading (D-11). The angles are computed from ``position_ids`` on every call
(no cos/sin cache to go stale or to cap the context), so arbitrary positions — left padding,
packed documents, contexts beyond ``max_position_embeddings`` — cost nothing extra.
"""

from __future__ import annotations

import torch
from torch import nn


def inverse_frequencies(head_dim: int, theta: float) -> torch.Tensor:
    """inv_freq_j = θ^(−2j/head_dim) for j < head_dim/2, computed in fp32 on the CPU (as the
    original did, so every device gets the same values)."""
    return 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device="cpu").float() / head_dim))


class RotaryEmbedding(nn.Module):
    """cos/sin tables ``[B|1, T, head_dim]`` for given positions."""

    inv_freq: torch.Tensor  # a registered buffer

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        self.head_dim = head_dim
        self.theta = theta
        self.register_buffer("inv_freq", inverse_frequencies(head_dim, theta), persistent=False)

    @torch.no_grad()
    def reset_inv_freq(self) -> None:
        """Recompute the buffer in place (after meta-device construction / loading)."""
        values = inverse_frequencies(self.head_dim, self.theta)
        if self.inv_freq.is_meta:
            self.inv_freq = values
        else:
            self.inv_freq.copy_(values)

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin for ``position_ids [B|1, T]``; angles in fp32, returned in ``dtype`` (the
        activation dtype — fp32 under autocast, as in the original)."""
        inv_freq = self.inv_freq.to(device=position_ids.device, dtype=torch.float32)
        angles = position_ids[..., None].float() * inv_freq
        emb = torch.cat((angles, angles), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) → (−x2, x1) over the two halves of the last dimension."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x [B, H, T, hd]`` by ``cos/sin [B|1, T, hd]``."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return x * cos + rotate_half(x) * sin
