"""The model compiles as one graph (``fullgraph=True``) and matches eager, gradients included.

The backends are resolved by a first eager call, as the trainer does when it logs the attention
plan; afterwards the forward pass is a cache lookup that ``torch.compile`` traces without a
graph break.
"""

from __future__ import annotations

import pytest
import torch

from model_fixtures import VOCAB, tiny_config
from argonne_kit.model import ArgonneForCausalLM


@pytest.mark.slow
def test_compiled_fullgraph_matches_eager():
    torch.manual_seed(0)
    model = ArgonneForCausalLM(tiny_config()).train()
    ids = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(0))
    eager = model(ids, labels=ids).loss
    eager.backward()
    eager_grad = model.blocks[1].attn.q_proj.weight.grad.clone()
    model.zero_grad(set_to_none=True)
    compiled = torch.compile(model, fullgraph=True)(ids, labels=ids).loss
    compiled.backward()
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.blocks[1].attn.q_proj.weight.grad, eager_grad, rtol=1e-4, atol=1e-6)
