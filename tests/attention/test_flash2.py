"""flash2: the mapping of the contract onto flash-attn 2, checked here against an emulation of
flash-attn's documented semantics, and on a GPU against ``math`` (skipped without one)."""

from __future__ import annotations

import importlib.machinery
import sys
import types

import pytest
import torch

import argonne_kit.kernels.flash2 as flash2_module
from argonne_kit.attention import build_backend
from argonne_kit.contracts.attention import AttentionSpec, AttentionUnsupported, Runtime


def documented_flash_attn_func(
    q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1), deterministic=False
):
    """flash-attn 2's README, literally: tensors are (batch, seqlen, nheads, headdim); Q heads
    are grouped over fewer KV heads in order; "if causal=True, the causal mask is aligned to the
    bottom right corner"; with a window "query at position i will only attend to keys between
    [i + seqlen_k - seqlen_q - window_size[0], i + seqlen_k - seqlen_q + window_size[1]]"
    (-1 = unbounded)."""
    seqlen_q, seqlen_k, heads, head_dim = q.shape[1], k.shape[1], q.shape[2], q.shape[3]
    scale = softmax_scale if softmax_scale is not None else head_dim**-0.5
    k = k.double().repeat_interleave(heads // k.shape[2], dim=2)
    v = v.double().repeat_interleave(heads // v.shape[2], dim=2)
    scores = torch.einsum("bqhd,bkhd->bhqk", q.double(), k) * scale
    i = torch.arange(seqlen_q)[:, None] + seqlen_k - seqlen_q
    j = torch.arange(seqlen_k)[None, :]
    left, right = window_size
    right = 0 if causal else right
    allowed = torch.ones(seqlen_q, seqlen_k, dtype=torch.bool)
    if left >= 0:
        allowed &= j >= i - left
    if right >= 0:
        allowed &= j <= i + right
    probs = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
    return torch.einsum("bhqk,bkhd->bqhd", probs, v).to(q.dtype)


@pytest.fixture
def fake_flash_attn(monkeypatch):
    """A ``flash_attn`` package that records its calls and computes the documented semantics."""
    calls = []
    package = types.ModuleType("flash_attn")
    package.__spec__ = importlib.machinery.ModuleSpec("flash_attn", None, is_package=True)
    interface = types.ModuleType("flash_attn.flash_attn_interface")
    interface.__spec__ = importlib.machinery.ModuleSpec("flash_attn.flash_attn_interface", None)

    def flash_attn_func(q, k, v, **kwargs):
        calls.append({"shapes": (q.shape, k.shape), **kwargs})
        return documented_flash_attn_func(q, k, v, **kwargs)

    package.flash_attn_func = interface.flash_attn_func = flash_attn_func
    monkeypatch.setitem(sys.modules, "flash_attn", package)
    monkeypatch.setitem(sys.modules, "flash_attn.flash_attn_interface", interface)
    flash2_module._unavailable_reason.cache_clear()
    yield calls
    flash2_module._unavailable_reason.cache_clear()


def test_the_emulation_matches_math_on_plain_causal_attention():
    """Guards the emulation itself: without a window it is ordinary causal attention."""
    q, k, v = torch.randn(3, 1, 2, 10, 8).unbind(0)
    out = documented_flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=True)
    torch.testing.assert_close(out.transpose(1, 2), build_backend("math")(q, k, v, AttentionSpec()))


@pytest.mark.parametrize(
    "spec, queries",
    [
        (AttentionSpec(), 24),
        (AttentionSpec(window=0), 24),
        (AttentionSpec(window=5), 24),
        (AttentionSpec(window=40), 24),
        (AttentionSpec(window=5, scale=0.2), 24),
        (AttentionSpec(causal=False, window=5), 24),
        (AttentionSpec(window=6, query_offset=23), 1),
        (AttentionSpec(window=6, query_offset=21), 3),
    ],
)
@pytest.mark.parametrize("kv_heads", [2, 4])
def test_flash2_mapping_equals_math(fake_flash_attn, spec, queries, kv_heads):
    flash = build_backend("flash2")
    assert flash.available() is None
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(2, 4, queries, 16, generator=gen, dtype=torch.bfloat16)
    k, v = torch.randn(2, 2, kv_heads, 24, 16, generator=gen, dtype=torch.bfloat16).unbind(0)
    out = flash(q, k, v, spec)
    torch.testing.assert_close(out.float(), build_backend("math")(q, k, v, spec).float(), atol=2e-2, rtol=2e-2)
    (call,) = fake_flash_attn
    assert call["shapes"] == ((2, queries, 4, 16), (2, 24, kv_heads, 16))  # [B, T, H, d]; GQA native
    expected_window = (-1, -1) if spec.window is None else (spec.window, 0 if spec.causal else -1)
    assert call["window_size"] == expected_window
    assert call["causal"] == spec.causal and call["softmax_scale"] == spec.scale


def test_flash2_refuses_what_it_cannot_honour(fake_flash_attn):
    flash = build_backend("flash2")
    q = torch.randn(1, 2, 4, 16, dtype=torch.bfloat16)
    k = torch.randn(1, 2, 8, 16, dtype=torch.bfloat16)
    with pytest.raises(AttentionUnsupported, match="query_offset 0 != S - T = 4"):
        flash(q, k, k, AttentionSpec())
    with pytest.raises(AttentionUnsupported, match="padding mask"):
        flash(q, q, q, AttentionSpec(), key_padding_mask=torch.ones(1, 4, dtype=torch.bool))
    rt = Runtime("cpu", torch.bfloat16, 16, 2, 2, needs_backward=False)
    with pytest.raises(AttentionUnsupported, match="'flash2': device 'cpu' not supported"):
        flash.check(AttentionSpec(), rt)
    with pytest.raises(AttentionUnsupported, match="head_dim 12 not a multiple of 8"):
        flash.check(AttentionSpec(), Runtime("cuda", torch.bfloat16, 12, 2, 2, needs_backward=True))
    assert fake_flash_attn == []


def test_flash_attn_without_the_flash2_api_is_refused(monkeypatch):
    """D-4: the original's environment had a flash_attn without flash_attn_interface."""
    package = types.ModuleType("flash_attn")
    package.__spec__ = importlib.machinery.ModuleSpec("flash_attn", None, is_package=True)
    package.__path__ = []
    monkeypatch.setitem(sys.modules, "flash_attn", package)
    flash2_module._unavailable_reason.cache_clear()
    try:
        assert "no flash_attn.flash_attn_interface" in build_backend("flash2").available()
    finally:
        flash2_module._unavailable_reason.cache_clear()


needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_gpu
@pytest.mark.parametrize(
    "spec, queries",
    [
        (AttentionSpec(), 64),
        (AttentionSpec(window=7), 64),
        (AttentionSpec(window=7, query_offset=61), 3),
    ],
)
def test_flash2_on_gpu_equals_math_forward_and_backward(spec, queries):
    pytest.importorskip("flash_attn")
    flash = build_backend("flash2")
    flash.check(spec, Runtime("cuda", torch.bfloat16, 64, 4, 2, needs_backward=True))
    gen = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(2, 4, queries, 64, device="cuda", dtype=torch.bfloat16, generator=gen, requires_grad=True)
    k, v = (
        torch.randn(2, 2, 64, 64, device="cuda", dtype=torch.bfloat16, generator=gen, requires_grad=True)
        for _ in range(2)
    )
    out = flash(q, k, v, spec)
    ref = build_backend("math")(q, k, v, spec)
    torch.testing.assert_close(out.float(), ref.float(), atol=2e-2, rtol=2e-2)
    grads = torch.autograd.grad(out.float().square().sum(), (q, k, v))
    ref_grads = torch.autograd.grad(ref.float().square().sum(), (q, k, v))
    for got, expected in zip(grads, ref_grads):
        torch.testing.assert_close(got.float(), expected.float(), atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize("deterministic", [False, True])
def test_deterministic_reaches_flash_attn(fake_flash_attn, deterministic):
    """``[attention] kind = "flash2"``, ``deterministic``: passed to every flash-attn call."""
    from argonne_kit.registry import get_registry

    component = get_registry().get("attention", "flash2")
    flash = component.factory(component.config_cls(deterministic=deterministic))
    q, k, v = torch.randn(3, 1, 2, 8, 16, dtype=torch.bfloat16).unbind(0)
    flash(q, k, v, AttentionSpec())
    (call,) = fake_flash_attn
    assert call["deterministic"] is deterministic
