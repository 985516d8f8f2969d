"""flex: block-mask caching (shared across layers, rebuilt when a mask tensor changes) and,
on a GPU, training parity with ``math`` (FlexAttention has no CPU backward)."""

from __future__ import annotations

import warnings

import pytest
import torch

from argonne_kit.attention import build_backend
from argonne_kit.contracts.attention import AttentionSpec


@pytest.fixture(autouse=True)
def _quiet_eager_flex():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
        yield


def test_block_masks_are_shared_by_layers_and_rebuilt_when_the_padding_changes():
    flex, math = build_backend("flex"), build_backend("math")
    q = torch.randn(2, 2, 16, 8)
    mask = torch.ones(2, 16, dtype=torch.bool)
    mask[1, :5] = False
    spec = AttentionSpec(window=4)
    with torch.no_grad():
        for _layer in range(3):
            flex(q, q, q, spec, key_padding_mask=mask)
            flex(q, q, q, AttentionSpec())
        assert len(flex._block_masks) == 2  # one per distinct (spec, mask)
        mask[0, :3] = False  # in place: the cached block mask no longer describes it
        out = flex(q, q, q, spec, key_padding_mask=mask)
        assert len(flex._block_masks) == 3
        torch.testing.assert_close(out, math(q, q, q, spec, key_padding_mask=mask), atol=2e-5, rtol=1e-4)
        with torch.inference_mode():
            fresh = mask.clone()  # an inference tensor has no version counter: never cached
            flex(q, q, q, spec, key_padding_mask=fresh)
        assert len(flex._block_masks) == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_flex_on_gpu_trains_and_equals_math():
    spec = AttentionSpec(window=9)
    gen = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(2, 4, 64, 64, device="cuda", generator=gen, requires_grad=True)
    k, v = (torch.randn(2, 2, 64, 64, device="cuda", generator=gen, requires_grad=True) for _ in range(2))
    mask = torch.ones(2, 64, dtype=torch.bool, device="cuda")
    mask[1, :11] = False
    out = build_backend("flex")(q, k, v, spec, key_padding_mask=mask)
    ref = build_backend("math")(q, k, v, spec, key_padding_mask=mask)
    torch.testing.assert_close(out, ref, atol=1e-3, rtol=1e-3)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    ref_grads = torch.autograd.grad(ref.square().sum(), (q, k, v))
    for got, expected in zip(grads, ref_grads):
        torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-3)
