"""The ``clm`` objective: shift (D-13), sums, z-loss and chunked cross-entropy."""

import math

import pytest
import torch
import torch.nn.functional as F

from argonne_kit.model import build_model
from argonne_kit.recipe.model_sections import Argonne2ModelConfig
from argonne_kit.registry import get_registry


def objective(**cfg):
    component = get_registry().get("objective", "clm")
    return component.factory(component.config_cls(**cfg))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    section = Argonne2ModelConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=64,
    )
    return build_model(section, vocab_size=97)


def test_clm_scores_next_tokens_as_a_sum(model):
    ids = torch.randint(0, 97, (3, 17))
    out = objective()(model, {"input_ids": ids})
    logits = model(input_ids=ids[:, :-1]).logits
    want = F.cross_entropy(logits.reshape(-1, 97).float(), ids[:, 1:].reshape(-1), reduction="sum")
    torch.testing.assert_close(out.loss_sum, want)
    assert objective().units({"input_ids": ids}).item() == 3 * 16
    torch.testing.assert_close(out.metric_sums["nll"], want)


def test_z_loss_adds_weighted_logsumexp_squared(model):
    ids = torch.randint(0, 97, (2, 9))
    plain = objective()(model, {"input_ids": ids}).loss_sum
    out = objective(z_loss_weight=1e-2)(model, {"input_ids": ids})
    logits = model(input_ids=ids[:, :-1]).logits.float()
    z = torch.logsumexp(logits, -1).pow(2).sum()
    torch.testing.assert_close(out.loss_sum, plain + 1e-2 * z)
    torch.testing.assert_close(out.metric_sums["z_loss"], z)


def test_chunked_cross_entropy_equals_the_full_one_with_gradients(model):
    ids = torch.randint(0, 97, (2, 21), generator=torch.Generator().manual_seed(0))
    grads = []
    losses = []
    for chunk in (0, 7):
        model.zero_grad()
        loss = objective(loss_chunk_size=chunk, z_loss_weight=1e-3)(model, {"input_ids": ids}).loss_sum
        loss.backward()
        losses.append(loss.detach())
        grads.append([p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(losses[0], losses[1])
    for a, b in zip(*grads):
        # fp32 gradients of a 40-token loss *sum*, accumulated chunk by chunk vs in one matmul:
        # only the summation order differs, which moves values by a few ulps of the sum.
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert math.isfinite(losses[0].item())
