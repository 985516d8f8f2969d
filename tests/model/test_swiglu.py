"""The fused clamped SwiGLU equals plain autograd through clamp → silu → mul, gradients included."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from argonne_kit.model.swiglu import swiglu


def test_clamped_swiglu_matches_autograd_reference():
    gen = torch.Generator().manual_seed(0)
    gate = (torch.randn(6, 40, generator=gen) * 2).requires_grad_()
    up = (torch.randn(6, 40, generator=gen) * 2).requires_grad_()
    grad = torch.randn(6, 40, generator=gen)
    limit = 1.5  # many entries are clamped
    ours = swiglu(gate, up, limit)
    g_ours, u_ours = torch.autograd.grad(ours, (gate, up), grad)
    ref = F.silu(gate.clamp(-limit, limit)) * up.clamp(-limit, limit)
    g_ref, u_ref = torch.autograd.grad(ref, (gate, up), grad)
    assert (gate.abs() > limit).any() and (g_ref == 0).any()
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(u_ours, u_ref, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(swiglu(gate, up, limit), ref)
    torch.testing.assert_close(swiglu(gate, up, None), F.silu(gate) * up)


def test_rms_norm_fused_fp32_path_is_the_formula():
    from argonne_kit.model.modeling import RMSNorm

    norm = RMSNorm(48, 1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 1.5, 48))
    x = torch.randn(5, 7, 48, generator=torch.Generator().manual_seed(1))
    reference = norm.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))
    torch.testing.assert_close(norm(x), reference, rtol=1e-6, atol=1e-6)
    # bf16 input with fp32 weights (autocast): normalised in fp32, promoted by the weight
    out = norm(x.bfloat16())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, reference, rtol=2e-2, atol=2e-2)
