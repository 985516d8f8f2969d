"""The ``clm`` objective's extra loss terms against hand-computed values: the original's
shifted-logit multi-token (MTP) term and the z-loss, each with one key, both in the objective."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from argonne_kit.errors import RecipeError
from argonne_kit.model import build_model
from argonne_kit.recipe.api import resolve_recipe
from argonne_kit.recipe.model_sections import Argonne2ModelConfig
from argonne_kit.registry import get_registry

VOCAB = 97


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
    return build_model(section, vocab_size=VOCAB)


def hand_loss(model, ids, z_weight=0.0, mtp_horizon=1, mtp_weight=0.0):
    """The original's pretraining loss of one micro-batch, written out term by term:
    CE(t→t+1) + z_w·mean(logsumexp²) + w·mean_{h=2..H}(CE(logits_t → token t+h) / h)."""
    x = ids[:, :-1]
    logits = model(input_ids=x).logits.float()
    T = x.size(1)
    ce = F.cross_entropy(logits.reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
    z = torch.logsumexp(logits, -1).pow(2).mean()
    terms = []
    for h in range(2, mtp_horizon + 1):
        # position t is scored against token t+h: logits rows 0..T-h, tokens h..T
        ce_h = F.cross_entropy(logits[:, : T - h + 1].reshape(-1, VOCAB), ids[:, h:].reshape(-1))
        terms.append(ce_h / h)
    mtp = torch.stack(terms).mean() if terms else torch.zeros(())
    return ce + z_weight * z + mtp_weight * mtp, mtp


def test_mtp_term_equals_the_hand_computed_shifted_logit_loss(model):
    ids = torch.randint(0, VOCAB, (3, 13), generator=torch.Generator().manual_seed(1))
    obj = objective(mtp_horizon=3, mtp_loss_weight=0.5)
    out = obj(model, {"input_ids": ids})
    units = obj.units({"input_ids": ids})
    want, mtp = hand_loss(model, ids, mtp_horizon=3, mtp_weight=0.5)
    torch.testing.assert_close(out.loss_sum / units, want)
    torch.testing.assert_close(out.metric_sums["mtp_loss"] / units, mtp)
    base = objective()(model, {"input_ids": ids}).loss_sum / units
    assert (out.loss_sum / units - base).item() == pytest.approx(0.5 * mtp.item(), rel=1e-5)
    assert mtp.item() > 1.0  # a real term, not a no-op


def test_z_loss_and_mtp_together(model):
    ids = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(2))
    obj = objective(z_loss_weight=1e-2, mtp_horizon=4, mtp_loss_weight=0.25)
    out = obj(model, {"input_ids": ids})
    want, _ = hand_loss(model, ids, z_weight=1e-2, mtp_horizon=4, mtp_weight=0.25)
    torch.testing.assert_close(out.loss_sum / obj.units({"input_ids": ids}), want)


def test_mtp_gradients_flow(model):
    ids = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(3))
    model.zero_grad()
    objective(mtp_horizon=2, mtp_loss_weight=1.0)(model, {"input_ids": ids}).loss_sum.backward()
    with_mtp = model.get_input_embeddings().weight.grad.clone()
    model.zero_grad()
    objective()(model, {"input_ids": ids}).loss_sum.backward()
    assert not torch.allclose(with_mtp, model.get_input_embeddings().weight.grad)
    model.zero_grad()


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"mtp_horizon": 3}, "needs both"),
        ({"mtp_loss_weight": 0.3}, "needs both"),
        ({"mtp_horizon": 2, "mtp_loss_weight": 0.3, "loss_chunk_size": 64}, "chunked cross-entropy"),
        ({"mtp_horizon": 0}, ">= 1"),
    ],
)
def test_mtp_settings_that_would_change_nothing_or_cannot_work_are_refused(cfg, message):
    with pytest.raises(ValueError, match=message):
        objective(**cfg)


def test_chunked_ce_supports_the_z_loss(model):
    ids = torch.randint(0, VOCAB, (2, 11), generator=torch.Generator().manual_seed(4))
    full = objective(z_loss_weight=1e-2)(model, {"input_ids": ids}).loss_sum
    chunked = objective(z_loss_weight=1e-2, loss_chunk_size=5)(model, {"input_ids": ids}).loss_sum
    want, _ = hand_loss(model, ids, z_weight=1e-2)
    torch.testing.assert_close(chunked / ids[:, 1:].numel(), want)
    torch.testing.assert_close(chunked, full)


@pytest.mark.parametrize("key", ["z_loss_weight", "mtp_horizon", "mtp_loss_weight", "loss_chunk_size"])
def test_the_model_section_has_no_loss_keys(key, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[model]\nkind = "argonne2"\n[data]\nkind = "bin_shards"\n')
    with pytest.raises(RecipeError, match=f"model.{key}: unknown key; did you mean 'objective.{key}'"):
        resolve_recipe(recipe, [f"model.{key}=1"])
