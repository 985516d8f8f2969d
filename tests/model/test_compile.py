"""The model compiles as one graph (``fullgraph=True``) and matches eager, gradients included.

The backends are resolved by a first eager call, as the trainer does when it logs the attention
plan; afterwards the forward pass is a cache lookup that ``torch.compile`` traces without a
graph break.
"""

from __future__ import annotations

import pytest
import torch
from model_fixtures import VOCAB, tiny_config

from argonne_kit.model import ArgonneForCausalLM, linear


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compiled_fullgraph_matches_eager(monkeypatch, precision):
    """bf16 autocast with the linear layers' fp32-SGEMM route forced on (argonne_kit.model.linear):
    the custom autograd function traces into the same single graph (``aot_eager``: dynamo and
    AOT autograd without inductor's bf16 code generation, which costs a minute on CI)."""
    monkeypatch.setattr(linear, "cpu_has_native_gemm", lambda dtype: False)
    tol = dict(rtol=1e-5, atol=1e-5) if precision == "fp32" else dict(rtol=2e-2, atol=2e-3)
    torch.manual_seed(0)
    model = ArgonneForCausalLM(tiny_config()).train()
    ids = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(0))
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")  # noqa: E731
    with autocast():
        eager = model(ids, labels=ids).loss
    eager.backward()
    eager_grad = model.model.layers[1].attn.q_proj.weight.grad.clone()
    model.zero_grad(set_to_none=True)
    with autocast():
        backend = "inductor" if precision == "fp32" else "aot_eager"
        compiled = torch.compile(model, fullgraph=True, backend=backend)(ids, labels=ids).loss
    compiled.backward()
    torch.testing.assert_close(compiled, eager, **tol)
    torch.testing.assert_close(
        model.model.layers[1].attn.q_proj.weight.grad, eager_grad, rtol=10 * tol["rtol"], atol=tol["atol"]
    )
