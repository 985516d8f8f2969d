"""Attention-probability dropout (``AttentionSpec.dropout``), which the Argonne 1.x models train
with (0.1, original.md §1.1): ``math`` drops probabilities exactly like ``F.dropout``, ``sdpa`` is
unbiased around the no-dropout result, ``flex`` refuses it, and the 1.x model uses it in
training only."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from argonne_kit.attention import build_backend
from argonne_kit.contracts.attention import AttentionSpec, AttentionUnsupported, Runtime


def qkv(seed=0, heads=2, queries=8, head_dim=16):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(1, heads, queries, head_dim, generator=gen) for _ in range(3)]


def test_math_drops_the_softmax_probabilities_like_f_dropout():
    q, k, v = qkv()
    torch.manual_seed(3)
    got = build_backend("math")(q, k, v, AttentionSpec(dropout=0.25))
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    scores = scores.masked_fill(~torch.ones(8, 8, dtype=torch.bool).tril(), float("-inf"))
    torch.manual_seed(3)
    want = F.dropout(scores.softmax(-1), 0.25) @ v
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, build_backend("math")(q, k, v, AttentionSpec()))


def test_sdpa_dropout_is_unbiased_around_the_plain_result():
    q, k, v = qkv()
    sdpa = build_backend("sdpa")
    plain = sdpa(q, k, v, AttentionSpec())
    torch.manual_seed(0)
    samples = torch.stack([sdpa(q, k, v, AttentionSpec(dropout=0.1)) for _ in range(3000)])
    assert (samples[0] != plain).any()
    torch.testing.assert_close(samples.mean(0), plain, atol=0.03, rtol=0)


def test_flex_refuses_dropout_and_auto_avoids_it():
    spec, rt = (
        AttentionSpec(dropout=0.1),
        Runtime(device_type="cpu", dtype=torch.float32, head_dim=16, num_heads=2, num_kv_heads=2, needs_backward=False),
    )
    with pytest.raises(AttentionUnsupported, match="attention dropout 0.1 not supported"):
        build_backend("flex").check(spec, rt)
    with pytest.raises(AttentionUnsupported, match="dropout"):
        build_backend("flex")(*qkv(), spec)
    assert build_backend("auto").choose(spec, rt).name != "flex"


def test_argonne_1x_uses_attention_dropout_in_training_only():
    from argonne_kit.model.attend import build_context
    from argonne_kit.model.legacy import ArgonneV1Config, ArgonneV1ForCausalLM

    model = ArgonneV1ForCausalLM(
        ArgonneV1Config(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.1)
    )
    hidden = torch.zeros(1, 8, 32)
    train = build_context(model.model._attention, hidden, None, None, 0, training=True)
    assert [s.dropout for s in train.specs] == [0.1, 0.1]
    assert [s.dropout for s in build_context(model.model._attention, hidden, None, None, 0).specs] == [0.0, 0.0]
    ids = torch.randint(0, 64, (1, 8), generator=torch.Generator().manual_seed(1))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, model(ids).logits)
