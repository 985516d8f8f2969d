"""SwiGLU with the original's ±65504 clamp on the gate and up projections, in one autograd node.

``silu(clamp(g)) · clamp(u)`` through plain autograd costs four extra elementwise passes per
clamp in backward (ge, le, logical_and, where) and keeps five activations alive. This node
saves the clamped inputs plus two one-byte masks and computes the exact same gradients as
autograd's clamp (zero where the input lay outside the range, NaN included) with one ``where``
per input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class ClampedSwiGLU(torch.autograd.Function):
    """``silu(g.clamp(-c, c)) * u.clamp(-c, c)`` with a lean backward."""

    @staticmethod
    def forward(ctx, gate: torch.Tensor, up: torch.Tensor, limit: float) -> torch.Tensor:
        gate_c, up_c = gate.clamp(-limit, limit), up.clamp(-limit, limit)
        ctx.save_for_backward(gate_c, up_c, gate_c == gate, up_c == up)
        return F.silu(gate_c) * up_c

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        gate_c, up_c, gate_in_range, up_in_range = ctx.saved_tensors
        grad_up = grad * F.silu(gate_c)
        grad_gate = torch.ops.aten.silu_backward(grad * up_c, gate_c)
        zero = grad.new_zeros(())
        return torch.where(gate_in_range, grad_gate, zero), torch.where(up_in_range, grad_up, zero), None


def swiglu(gate: torch.Tensor, up: torch.Tensor, clamp: float | None) -> torch.Tensor:
    """``silu(gate) · up``, with both inputs clamped to ±``clamp`` when it is set."""
    if not clamp:
        return F.silu(gate) * up
    if torch.is_grad_enabled() and (gate.requires_grad or up.requires_grad):
        return ClampedSwiGLU.apply(gate, up, clamp)
    return F.silu(gate.clamp(-clamp, clamp)) * up.clamp(-clamp, clamp)
