"""Backend choice and refusals: ``auto`` per layer, clear refusals (D-4), the kernel that runs
under bf16 autocast training (D-27), and no fallback on errors (D-15)."""

from __future__ import annotations

import logging
import types

import pytest
import torch
import torch.nn.functional as F

from argonne_kit import kernels
from argonne_kit.attention import build_backend, select_backends
from argonne_kit.contracts.attention import (
    AttentionBackend,
    AttentionSpec,
    AttentionUnsupported,
    Capabilities,
    Runtime,
)
from argonne_kit.model.attend import AttentionPlan
from argonne_kit.registry import get_registry, hookimpl

BUILT_INS = {"math", "sdpa", "flex", "flash2", "auto"}


def _runtime(dtype=torch.float32, training=True, device="cpu", **kw):
    return Runtime(
        device_type=device, dtype=dtype, head_dim=16, num_heads=4, num_kv_heads=2, needs_backward=training, **kw
    )


def test_built_in_backends_are_registered_through_the_entry_point():
    registry = get_registry()
    assert set(registry.names("attention")) >= BUILT_INS
    for name in BUILT_INS:
        component = registry.get("attention", name)
        assert component.plugin == "attention"
        backend = component.factory(component.config_cls())
        assert isinstance(backend, AttentionBackend) and backend.name == name


def test_auto_picks_sdpa_on_cpu_training_and_logs_the_plan_once(caplog):
    rt = _runtime(torch.bfloat16)
    plan = AttentionPlan("auto", [None, 7, None, 7], rt.head_dim, rt.num_heads, rt.num_kv_heads)
    with caplog.at_level(logging.INFO, logger="argonne_kit.model.attend"):
        first = plan.backends(rt, decoding=False)
        second = plan.backends(rt, decoding=False)
    assert [b.name for b in first] == [b.name for b in second] == ["sdpa"] * 4
    assert [b.name for b in select_backends("auto", plan.specs(0), rt)] == ["sdpa"] * 4
    plans = [r.getMessage() for r in caplog.records if r.name == "argonne_kit.model.attend"]
    assert len(plans) == 1
    assert "0:sdpa(full) 1:sdpa(window 7) 2:sdpa(full) 3:sdpa(window 7)" in plans[0]
    assert "training" in plans[0]


def test_flex_refuses_training_on_cpu_but_serves_inference():
    flex = build_backend("flex")
    with pytest.raises(AttentionUnsupported, match="'flex': no backward on 'cpu'"):
        flex.check(AttentionSpec(window=4), _runtime(training=True))
    flex.check(AttentionSpec(window=4), _runtime(training=False))
    flex.check(AttentionSpec(window=4), _runtime(training=True, device="cuda"))
    with pytest.raises(AttentionUnsupported, match="layer 0 \\(window=None\\).*'flex': no backward on 'cpu'"):
        select_backends("flex", [AttentionSpec(), AttentionSpec(window=4)], _runtime(training=True))


def test_flex_forward_that_autograd_would_record_on_cpu_is_refused_up_front():
    q = torch.randn(1, 2, 8, 16, requires_grad=True)
    with pytest.raises(AttentionUnsupported, match="no backward on 'cpu'.*torch.no_grad"):
        build_backend("flex")(q, q, q, AttentionSpec())


def test_flash2_refuses_here_with_the_reason():
    flash = build_backend("flash2")
    spec = AttentionSpec(window=4)
    if flash.available() is None:
        pytest.skip("flash_attn is installed here")
    with pytest.raises(AttentionUnsupported, match="'flash2': flash_attn not installed"):
        flash.check(spec, _runtime(torch.bfloat16, device="cuda"))
    caps = flash.capabilities
    assert caps.refusal(spec, _runtime(torch.bfloat16)) == "device 'cpu' not supported (supports ['cuda'])"
    assert "dtype torch.float32 not supported" in caps.refusal(spec, _runtime(torch.float32, device="cuda"))
    assert (
        caps.refusal(spec, _runtime(torch.bfloat16, device="cuda", padding_mask=True)) == "padding mask not supported"
    )
    assert caps.refusal(spec, _runtime(torch.bfloat16, device="cuda")) is None
    with pytest.raises(AttentionUnsupported, match="flash_attn not installed"):
        q = torch.randn(1, 2, 4, 16, dtype=torch.bfloat16)
        flash(q, q, q, spec)


class NoWindowBackend(AttentionBackend):
    """A third-party-like backend that cannot do sliding windows."""

    name = "nowindow"
    capabilities = Capabilities(window=False)

    def __init__(self, config=None):
        self.config = config

    def forward(self, q, k, v, spec, key_padding_mask=None, segment_ids=None):
        return build_backend("math")(q, k, v, spec, key_padding_mask, segment_ids)


@pytest.fixture
def third_party_registry(attention_registry):
    """The real registry plus a plugin registered the way a third party's would be."""
    import attrs

    from argonne_kit.contracts.config import ComponentConfig

    @attrs.define
    class NoWindowConfig(ComponentConfig):
        """No options."""

    plugin = types.SimpleNamespace(
        argonne_kit_register_components=hookimpl(
            lambda register: register("attention", "nowindow", NoWindowBackend, NoWindowConfig)
        )
    )
    attention_registry.register_plugin(plugin, "thirdparty")
    return attention_registry


def test_a_window_the_backend_cannot_honour_refuses_the_run(third_party_registry):
    specs = [AttentionSpec(), AttentionSpec(window=256)]
    with pytest.raises(AttentionUnsupported) as exc:
        select_backends("nowindow", specs, _runtime())
    message = str(exc.value)
    assert "layer 1 (window=256)" in message and "'nowindow'" in message and "window 256 not supported" in message
    # without a window the same backend is accepted
    assert [b.name for b in select_backends("nowindow", [AttentionSpec()], _runtime())] == ["nowindow"]


def test_sdpa_full_causal_takes_the_is_causal_path_and_a_window_passes_a_mask(monkeypatch):
    calls = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, is_causal=False, **kw):
        calls.append((attn_mask, is_causal))
        return real(q, k, v, attn_mask=attn_mask, is_causal=is_causal, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    sdpa, q = build_backend("sdpa"), torch.randn(1, 2, 16, 8)
    sdpa(q, q, q, AttentionSpec())
    sdpa(q, q, q, AttentionSpec(window=15))  # w >= T-1 hides nothing: same fast path
    sdpa(q, q, q, AttentionSpec(window=3))
    sdpa(q[:, :, -1:], q, q, AttentionSpec(query_offset=15))  # decode: every key visible
    assert [c[1] for c in calls] == [True, True, False, False]
    assert calls[0][0] is None and calls[1][0] is None and calls[3][0] is None
    window_mask = calls[2][0]
    assert window_mask.dtype == torch.bool and window_mask.shape == (16, 16)
    assert window_mask[10].tolist() == [False] * 7 + [True] * 4 + [False] * 5  # keys 7…10


def test_bf16_autocast_training_runs_sdpa_on_bf16_inputs(monkeypatch):
    """D-27: q/k rotated with fp32 cos/sin under autocast come out fp32 (what kept the original
    on the math path); cast explicitly to the compute dtype, SDPA runs on bf16."""
    dtypes = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        dtypes.append((q.dtype, k.dtype, v.dtype))
        return real(q, k, v, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    torch.manual_seed(0)
    weight = torch.randn(32, 3 * 64, requires_grad=True)
    x, cos = torch.randn(2, 16, 32), torch.rand(16, 16)
    specs = [AttentionSpec(), AttentionSpec(window=4)]
    backends = select_backends("auto", specs, _runtime(torch.bfloat16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        qkv = (x @ weight).view(2, 16, 3, 4, 16).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * cos, qkv[1] * cos, qkv[2]
        assert q.dtype == torch.float32  # the promotion of D-27
        q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
        outs = [backend(q, k, v, spec) for backend, spec in zip(backends, specs)]
    assert [b.name for b in backends] == ["sdpa", "sdpa"]
    assert dtypes == [(torch.bfloat16,) * 3] * 2
    assert all(o.dtype == torch.bfloat16 for o in outs)
    sum(o.float().sum() for o in outs).backward()
    assert weight.grad is not None and torch.isfinite(weight.grad).all()


def test_backends_keep_the_given_dtype_under_autocast():
    q = torch.randn(1, 2, 8, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for name in ("math", "sdpa", "auto"):
            assert build_backend(name)(q, q, q, AttentionSpec(window=2)).dtype == torch.float32


def test_an_error_in_the_chosen_kernel_propagates_without_fallback(monkeypatch):
    """D-15: the original caught SDPA's out-of-memory as RuntimeError and fell back to math."""

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(F, "scaled_dot_product_attention", out_of_memory)
    q = torch.randn(1, 2, 8, 16)
    for name in ("sdpa", "auto"):
        with pytest.raises(RuntimeError, match="out of memory"):
            build_backend(name)(q, q, q, AttentionSpec())


def test_auto_backend_dispatches_by_capability():
    auto = build_backend("auto")
    q = torch.randn(1, 4, 8, 16)
    k = torch.randn(1, 2, 8, 16)
    out = auto(q, k, k, AttentionSpec(window=3))
    torch.testing.assert_close(out, build_backend("math")(q, k, k, AttentionSpec(window=3)))
    assert auto.choose(AttentionSpec(window=3), _runtime()).name == "sdpa"
    assert auto.capabilities.window and "cpu" in auto.capabilities.backward_devices


def test_auto_refuses_with_every_candidates_reason(monkeypatch):
    monkeypatch.setattr(kernels, "AUTO_PREFERENCE", ("flash2",))
    with pytest.raises(AttentionUnsupported, match="layer 0: no attention backend.*'flash2'"):
        select_backends("auto", [AttentionSpec()], _runtime())
    with pytest.raises(AttentionUnsupported, match="'auto': no backend can run.*'flash2'"):
        build_backend("auto").check(AttentionSpec(), _runtime())


def test_inputs_that_break_the_contract_are_named():
    sdpa, q = build_backend("sdpa"), torch.randn(1, 4, 8, 16)
    with pytest.raises(ValueError, match="dtypes differ.*D-27"):
        sdpa(q, q.bfloat16(), q.bfloat16(), AttentionSpec())
    with pytest.raises(ValueError, match="not a multiple of 3 kv heads"):
        k = torch.randn(1, 3, 8, 16)
        sdpa(q, k, k, AttentionSpec())
    with pytest.raises(ValueError, match="key_padding_mask must be bool \\[1, 8\\]"):
        sdpa(q, q, q, AttentionSpec(), key_padding_mask=torch.ones(1, 8))
    with pytest.raises(ValueError, match="window must be >= 0"):
        sdpa(q, q, q, AttentionSpec(window=-1))
    with pytest.raises(ValueError, match="segment_ids need T <= S"):
        sdpa(q, q[:, :, :4], q[:, :, :4], AttentionSpec(), segment_ids=torch.zeros(1, 4, dtype=torch.long))


@pytest.mark.parametrize("name", ["math", "sdpa", "auto"])
def test_backends_trace_without_graph_breaks(name):
    """The trainer compiles the model; a break inside attention would split every layer."""
    backend = build_backend(name)
    specs = (AttentionSpec(), AttentionSpec(window=3), AttentionSpec(window=3, query_offset=14))
    q = torch.randn(2, 4, 16, 8, requires_grad=True)
    k = torch.randn(2, 2, 16, 8)
    padding = torch.ones(2, 16, dtype=torch.bool)
    padding[1, :4] = False

    def layers(q, k, padding):
        return (backend(q, k, k, specs[0]) + backend(q, k, k, specs[1], key_padding_mask=padding)).sum() + backend(
            q[:, :, -2:], k, k, specs[2]
        ).sum()

    expected = layers(q, k, padding)  # eager first: ``auto`` resolves its choices here
    explanation = torch._dynamo.explain(layers)(q, k, padding)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    torch.testing.assert_close(layers(q, k, padding), expected)
