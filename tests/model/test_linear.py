"""``argonne_kit.model.linear.Linear``: on a CPU without native bf16/fp16 GEMM, those matmuls run
through fp32 SGEMM with low-precision semantics (operands and results rounded, fp32 accumulation).

The route is forced on (``cpu_has_native_gemm`` patched to False) so these tests check the
same code on every host, and compared with PyTorch's own bf16 kernel and an fp64 reference.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from model_fixtures import tiny_config

from argonne_kit.model import ArgonneForCausalLM
from argonne_kit.model import linear as linear_module
from argonne_kit.model.linear import Linear, stock_cpu_gemm

BF16 = torch.bfloat16


@pytest.fixture
def routed(monkeypatch):
    """Force the route on and count how many times it ran."""
    calls = []
    real_apply = linear_module._Fp32AccumulateLinear.apply
    monkeypatch.setattr(linear_module, "cpu_has_native_gemm", lambda dtype: False)
    monkeypatch.setattr(
        linear_module._Fp32AccumulateLinear, "apply", lambda *args: calls.append(1) or real_apply(*args)
    )
    return calls


def layer_and_input(bias: bool, seed: int = 0):
    torch.manual_seed(seed)
    layer = Linear(96, 160, bias=bias)
    x = torch.randn(3, 7, 96, requires_grad=True)
    return layer, x


def one_rounding(value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """One rounding step of ``dtype`` (2⁻⁸ relative for bf16, 2⁻¹¹ for fp16) of each entry."""
    return value.abs() * torch.finfo(dtype).eps / 2 + 1e-6


@pytest.mark.parametrize("dtype", [BF16, torch.float16])
@pytest.mark.parametrize("bias", [False, True])
def test_routed_linear_matches_fp64_reference_within_one_rounding(routed, bias, dtype):
    layer, x = layer_and_input(bias)
    with torch.autocast("cpu", dtype=dtype):
        out = layer(x)
    grad_out = torch.randn_like(out, dtype=torch.float32)
    out.backward(grad_out)
    assert routed and out.dtype == dtype and out.shape == (3, 7, 160)

    # the reference rounds operands as autocast does, then multiplies exactly (fp64)
    x64, w64 = x.detach().to(dtype).double(), layer.weight.detach().to(dtype).double()
    g64 = grad_out.to(dtype).double()
    want = x64 @ w64.t()
    if bias:
        want = want + layer.bias.detach().to(dtype).double()
    assert ((out.double() - want).abs() <= one_rounding(want, dtype)).all()
    want_gx = g64 @ w64
    assert ((x.grad.double() - want_gx).abs() <= one_rounding(want_gx, dtype)).all()
    want_gw = g64.reshape(-1, 160).t() @ x64.reshape(-1, 96)
    assert ((layer.weight.grad.double() - want_gw).abs() <= one_rounding(want_gw, dtype)).all()
    assert layer.weight.grad.dtype == torch.float32  # the fp32 master weight gets an fp32 grad
    if bias:
        want_gb = g64.sum((0, 1))
        assert ((layer.bias.grad.double() - want_gb).abs() <= one_rounding(want_gb, dtype)).all()


def test_routed_linear_equals_stock_bf16_kernel_up_to_summation_order(routed):
    layer, x = layer_and_input(bias=True, seed=1)
    outputs, grads = [], []
    for stock in (False, True):
        layer.zero_grad()
        x.grad = None
        with stock_cpu_gemm() if stock else contextlib.nullcontext():
            with torch.autocast("cpu", dtype=BF16):
                out = layer(x)
            out.float().pow(2).sum().backward()
        outputs.append(out.float())
        grads.append((x.grad.clone(), layer.weight.grad.clone(), layer.bias.grad.clone()))
    assert len(routed) == 1  # the stock pass did not route
    torch.testing.assert_close(outputs[0], outputs[1], rtol=2**-7, atol=1e-3)
    for ours, theirs in zip(*grads):
        torch.testing.assert_close(ours, theirs, rtol=2**-6, atol=2e-2)


def test_pure_bf16_module_routes_without_autocast(routed):
    layer, x = layer_and_input(bias=False)
    layer = layer.to(BF16)
    out = layer(x.detach().to(BF16))
    assert routed and out.dtype == BF16


@pytest.mark.parametrize("case", ["fp32", "native", "fp32 input to bf16 layer"])
def test_route_stays_off_where_stock_kernel_is_right(routed, monkeypatch, case):
    layer, x = layer_and_input(bias=False)
    if case == "fp32":
        out = layer(x)
        assert out.dtype == torch.float32
    elif case == "native":
        monkeypatch.setattr(linear_module, "cpu_has_native_gemm", lambda dtype: True)
        with torch.autocast("cpu", dtype=BF16):
            layer(x)
    else:  # dtype mismatch without autocast: nn.Linear's own error, not a silent route
        with pytest.raises(RuntimeError):
            layer.to(BF16)(x)
    assert not routed


def test_bf16_training_step_of_the_model_matches_stock_kernel(routed):
    """A whole 3.0-shaped model: loss and every gradient of one bf16-autocast step agree."""
    torch.manual_seed(0)
    model = ArgonneForCausalLM(tiny_config()).train()
    ids = torch.randint(0, model.config.vocab_size, (2, 24))
    results = []
    for stock in (False, True):
        model.zero_grad(set_to_none=True)
        with stock_cpu_gemm() if stock else contextlib.nullcontext():
            with torch.autocast("cpu", dtype=BF16):
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
        results.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    assert len(routed) == 7 * 4 + 1  # q, k, v, o, gate, up, down in each of 4 blocks, + the tied head
    (loss_ours, grads_ours), (loss_stock, grads_stock) = results
    assert loss_ours == pytest.approx(loss_stock, rel=1e-2)
    for name, grad in grads_ours.items():
        torch.testing.assert_close(grad, grads_stock[name], rtol=0.1, atol=5e-3, msg=name)
