"""Every backend equals the ``math`` reference on the contract's masking semantics, and ``math``
equals a literal transcription of those semantics (a per-query loop)."""

from __future__ import annotations

import warnings

import pytest
import torch

from argonne_kit.attention import build_backend
from argonne_kit.contracts.attention import AttentionSpec

TOL = {"atol": 2e-5, "rtol": 1e-4}


def _qkv(batch=2, heads=4, kv_heads=2, queries=32, keys=None, head_dim=16, seed=0, grad=False):
    gen = torch.Generator().manual_seed(seed)
    keys = keys or queries
    q = torch.randn(batch, heads, queries, head_dim, generator=gen)
    k = torch.randn(batch, kv_heads, keys, head_dim, generator=gen)
    v = torch.randn(batch, kv_heads, keys, head_dim, generator=gen)
    return [t.requires_grad_(grad) for t in (q, k, v)]


def _padding(batch, keys, side, lengths):
    mask = torch.zeros(batch, keys, dtype=torch.bool)
    for b, n in enumerate(lengths):
        if side == "left":
            mask[b, keys - n :] = True
        else:
            mask[b, :n] = True
    return mask


def _segments(keys):
    """Two packed batches: docs of 10/12/10 tokens and of 5/27."""
    first = torch.tensor([0] * 10 + [1] * 12 + [2] * 10)[:keys]
    second = torch.tensor([7] * 5 + [3] * 27)[:keys]
    return torch.stack([first, second])


def literal_attention(q, k, v, spec, key_padding_mask=None, segment_ids=None):
    """The contract's docstring, one query at a time, in float64."""
    batch, heads, queries, head_dim = q.shape
    keys, group = k.shape[2], heads // k.shape[1]
    scale = spec.scale if spec.scale is not None else head_dim**-0.5
    out = torch.zeros(batch, heads, queries, head_dim, dtype=torch.float64)
    for b in range(batch):
        for h in range(heads):
            for t in range(queries):
                pos = spec.query_offset + t
                visible = [
                    s
                    for s in range(keys)
                    if (not spec.causal or s <= pos)
                    and (spec.window is None or pos - s <= spec.window)
                    and (key_padding_mask is None or key_padding_mask[b, s])
                    and (segment_ids is None or segment_ids[b, keys - queries + t] == segment_ids[b, s])
                ]
                if not visible:
                    continue
                kk = k[b, h // group, visible].double()
                weights = torch.softmax(kk @ q[b, h, t].double() * scale, dim=0)
                out[b, h, t] = weights @ v[b, h // group, visible].double()
    return out


# (spec, T, S, Hq, Hkv, padding side or None, segments)
CASES = {
    "full": (AttentionSpec(), 32, 32, 4, 2, None, False),
    "mha": (AttentionSpec(), 32, 32, 4, 4, None, False),
    "mqa": (AttentionSpec(window=6), 32, 32, 4, 1, None, False),
    "window0": (AttentionSpec(window=0), 32, 32, 4, 2, None, False),
    "window1": (AttentionSpec(window=1), 32, 32, 4, 2, None, False),
    "window5": (AttentionSpec(window=5), 32, 32, 4, 2, None, False),
    "window_T-1": (AttentionSpec(window=31), 32, 32, 4, 2, None, False),
    "window_ge_T": (AttentionSpec(window=64), 32, 32, 4, 2, None, False),
    "scale": (AttentionSpec(scale=0.3, window=9), 32, 32, 4, 2, None, False),
    "pad_left": (AttentionSpec(), 32, 32, 4, 2, "left", False),
    "pad_right": (AttentionSpec(), 32, 32, 4, 2, "right", False),
    "pad_left_window": (AttentionSpec(window=4), 32, 32, 4, 2, "left", False),
    "segments": (AttentionSpec(), 32, 32, 4, 2, None, True),
    "segments_window_pad": (AttentionSpec(window=7), 32, 32, 4, 2, "right", True),
    "decode1": (AttentionSpec(query_offset=31), 1, 32, 4, 2, None, False),
    "decode1_window": (AttentionSpec(window=8, query_offset=31), 1, 32, 4, 2, None, False),
    "decode3_window": (AttentionSpec(window=8, query_offset=29), 3, 32, 4, 2, None, False),
    "decode3_pad_left": (AttentionSpec(query_offset=29), 3, 32, 4, 2, "left", False),
    "decode3_segments": (AttentionSpec(window=20, query_offset=29), 3, 32, 4, 2, None, True),
    "non_causal": (AttentionSpec(causal=False), 32, 32, 4, 2, "right", False),
}


def _inputs(case, grad=False, seed=0):
    spec, queries, keys, heads, kv_heads, pad, segments = CASES[case]
    q, k, v = _qkv(heads=heads, kv_heads=kv_heads, queries=queries, keys=keys, seed=seed, grad=grad)
    extra = {}
    if pad:
        extra["key_padding_mask"] = _padding(2, keys, pad, [keys, keys - 9])
    if segments:
        extra["segment_ids"] = _segments(keys)
    return spec, (q, k, v), extra


@pytest.mark.parametrize(
    "case",
    [
        "full",
        "mqa",
        "window0",
        "window5",
        "window_ge_T",
        "scale",
        "pad_left_window",
        "segments_window_pad",
        "decode3_window",
        "decode3_segments",
        "non_causal",
    ],
)
def test_math_equals_literal_semantics(case):
    spec, (q, k, v), extra = _inputs(case)
    # Two query heads sharing one kv head (GQA) keep the per-query loop fast.
    q, k, v = q[:, :2], k[:, :1], v[:, :1]
    expected = literal_attention(q, k, v, spec, **extra)
    got = build_backend("math")(q, k, v, spec, **extra)
    torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", sorted(CASES))
def test_sdpa_equals_math_forward_and_backward(case):
    spec, (q, k, v), extra = _inputs(case, grad=True)
    reference = build_backend("math")(q, k, v, spec, **extra)
    ref_grads = torch.autograd.grad((reference * torch.cos(reference)).sum(), (q, k, v))
    out = build_backend("sdpa")(q, k, v, spec, **extra)
    grads = torch.autograd.grad((out * torch.cos(out)).sum(), (q, k, v))
    torch.testing.assert_close(out, reference, **TOL)
    for grad, ref in zip(grads, ref_grads):
        assert torch.isfinite(grad).all()
        torch.testing.assert_close(grad, ref, **TOL)


# Each new mask structure costs FlexAttention a trace on CPU: skip the cases that only vary a
# property another case already covers for flex.
FLEX_CASES = sorted(set(CASES) - {"window1", "window_T-1", "pad_left", "decode1", "decode3_segments"})


@pytest.mark.parametrize("case", FLEX_CASES)
def test_flex_equals_math_forward(case):
    spec, (q, k, v), extra = _inputs(case)
    flex = build_backend("flex")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
        out = flex(q, k, v, spec, **extra)
    torch.testing.assert_close(out, build_backend("math")(q, k, v, spec, **extra), **TOL)


@pytest.mark.parametrize("name", ["math", "sdpa", "flex", "auto"])
def test_rows_that_see_no_key_are_zero_not_nan(name):
    spec, (q, k, v), extra = _inputs("pad_left_window", grad=name != "flex")
    mask = extra["key_padding_mask"]
    context = torch.no_grad() if name == "flex" else torch.enable_grad()
    with context, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
        out = build_backend(name)(q, k, v, spec, **extra)
    # Row 1 is left-padded by 9: its first 9 queries see only padded keys.
    assert torch.isfinite(out).all()
    assert (out[1, :, :9] == 0).all()
    assert (out[1, :, 9:].abs().sum(-1) > 0).all()
    if name != "flex":
        grads = torch.autograd.grad(out.sum(), (q, k, v))
        assert all(torch.isfinite(g).all() for g in grads)
        assert (grads[0][1, :, :9] == 0).all()  # hidden rows get no gradient
        # padded keys receive no gradient either
        assert (grads[1][1][:, ~mask[1]] == 0).all() and (grads[2][1][:, ~mask[1]] == 0).all()


@pytest.mark.parametrize("name", ["math", "sdpa", "flex"])
@pytest.mark.parametrize("case", ["full", "window5", "decode3_pad_left"])
def test_bf16_in_bf16_out_close_to_fp32(name, case):
    spec, (q, k, v), extra = _inputs(case)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
        out = build_backend(name)(q.bfloat16(), k.bfloat16(), v.bfloat16(), spec, **extra)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), build_backend("math")(q, k, v, spec, **extra), atol=3e-2, rtol=3e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("case", ["full", "window5", "pad_left_window", "segments_window_pad", "decode3_window"])
def test_sdpa_on_gpu_equals_math_forward_and_backward(case):
    """On CUDA a masked GQA call repeats the kv heads (the fused kernels take no enable_gqa with a mask)."""
    spec, tensors, extra = _inputs(case)
    q, k, v = (t.cuda().requires_grad_() for t in tensors)
    extra = {name: t.cuda() for name, t in extra.items()}
    out = build_backend("sdpa")(q, k, v, spec, **extra)
    ref = build_backend("math")(q, k, v, spec, **extra)
    torch.testing.assert_close(out, ref, atol=1e-3, rtol=1e-3)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    ref_grads = torch.autograd.grad(ref.square().sum(), (q, k, v))
    for got, expected in zip(grads, ref_grads):
        torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-3)
