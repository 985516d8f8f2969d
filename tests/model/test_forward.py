"""forward(): attention_mask, position_ids, segment_ids, per-layer windows and the explicit
compute-dtype cast through the attention contract (D-4, D-27)."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import VOCAB

from argonne_kit.attention import build_backend
from argonne_kit.contracts.attention import AttentionBackend, AttentionUnsupported, Capabilities

IDS = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(4))


class Spy(AttentionBackend):
    """Delegates to ``sdpa`` and records what each call received."""

    name = "spy"

    def __init__(self, capabilities: Capabilities | None = None):
        self.capabilities = capabilities or Capabilities()
        self.inner = build_backend("sdpa")
        self.calls = []

    def forward(self, q, k, v, spec, key_padding_mask=None, segment_ids=None):
        self.calls.append((q.dtype, k.dtype, v.dtype, spec))
        return self.inner(q, k, v, spec, key_padding_mask=key_padding_mask, segment_ids=segment_ids)


def test_windows_reach_the_backend_per_layer(make_model):
    model = make_model(local_attention_window=3)
    spy = Spy()
    model.set_attention_backend("spy", spy)
    with torch.no_grad():
        model(IDS)
    assert [spec.window for *_, spec in spy.calls] == [None, 3, None, 3]
    assert model.attention_plan() == [("spy", None), ("spy", 3), ("spy", None), ("spy", 3)]


def test_window_changes_only_what_it_should(make_model):
    windowed = make_model(local_attention_window=3)
    full = make_model(interleaved_local_attention=False)
    with torch.no_grad():
        a, b = windowed(IDS).logits, full(IDS).logits
    torch.testing.assert_close(a[:, :4], b[:, :4])  # positions 0..3 see ≤ 3 keys back
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_backend_without_window_is_refused(make_model):
    model = make_model(local_attention_window=3)
    model.set_attention_backend("spy", Spy(Capabilities(window=False)))
    with pytest.raises(AttentionUnsupported, match="layer 1"):
        model(IDS)


def test_qkv_cast_to_autocast_dtype_and_fused_backend_chosen(make_model):
    # D-27: fp32 RoPE tables and fp32 norm weights promote q/k; the model casts them back
    model = make_model().train()
    spy = Spy()
    model.set_attention_backend("spy", spy)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(IDS).logits.float().sum().backward()
    assert {call[:3] for call in spy.calls} == {(torch.bfloat16,) * 3}
    auto = make_model().train()
    assert {name for name, _ in auto.attention_plan(dtype=torch.bfloat16)} == {"sdpa"}


def test_attention_mask_hides_padding(make_model):
    model = make_model()
    mask = torch.ones_like(IDS)
    mask[0, 7:] = 0  # right padding
    with torch.no_grad():
        padded = model(IDS, attention_mask=mask).logits
        alone = model(IDS[:1, :7]).logits
        garbage = IDS.clone()
        garbage[0, :3] = 1
        left = torch.cat([torch.full((1, 3), 5), IDS[:1, :7]], dim=1)
        left_mask = torch.tensor([[0] * 3 + [1] * 7])
        left_logits = model(left, attention_mask=left_mask, position_ids=(left_mask.cumsum(-1) - 1).clamp(min=0)).logits
    torch.testing.assert_close(padded[0, :7], alone[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(left_logits[0, 3:], alone[0], rtol=1e-5, atol=1e-5)


def test_position_ids_are_honoured(make_model):
    model = make_model()
    gap = torch.tensor([[0, 1, 2, 9, 10, 11, 12, 13, 14, 15]])
    with torch.no_grad():
        default = model(IDS[:1]).logits
        gapped = model(IDS[:1], position_ids=gap).logits
        shifted = model(IDS[:1], position_ids=gap + 5).logits
    assert not torch.allclose(default[:, 3:], gapped[:, 3:], atol=1e-4)
    torch.testing.assert_close(gapped, shifted, rtol=1e-4, atol=1e-4)  # RoPE is relative


def test_segment_ids_isolate_packed_documents(make_model):
    model = make_model(interleaved_local_attention=False)
    segments = torch.tensor([[0] * 6 + [1] * 4])
    positions = torch.tensor([list(range(6)) + list(range(4))])
    with torch.no_grad():
        packed = model(IDS[:1], segment_ids=segments, position_ids=positions).logits
        second = model(IDS[:1, 6:]).logits
        first = model(IDS[:1, :6]).logits
    torch.testing.assert_close(packed[:, 6:], second, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(packed[:, :6], first, rtol=1e-5, atol=1e-5)


def test_hidden_states_feed_logits_from_hidden(make_model):
    model = make_model()
    with torch.no_grad():
        out = model(IDS, output_hidden_states=True, return_logits=False)
        full = model(IDS).logits
    assert out.logits is None and len(out.hidden_states) == model.config.num_hidden_layers + 1
    torch.testing.assert_close(model.logits_from_hidden(out.hidden_states[-1]), full)
    assert full.abs().max() <= 15.0  # softcap
    with torch.no_grad():
        last = model(IDS, logits_to_keep=1).logits
    torch.testing.assert_close(last, full[:, -1:])
