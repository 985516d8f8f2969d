"""SFT objective: the shift is right for stock HF models and for ours (D-13), masked positions do
not count, chunked CE equals the plain one, and the loss normalises over the global batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from objective_fixtures import MODELS, chat_like_batch

from argonne_kit.registry import get_registry
from argonne_plugins.objectives.sft import SFTConfig, SFTObjective, token_nll


def hand_shifted_mean_ce(model, batch) -> torch.Tensor:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    vocab = logits.shape[-1]
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, vocab).float(), batch["labels"][:, 1:].reshape(-1), ignore_index=-100
    )


@pytest.mark.parametrize("name", ["qwen3", "llama"])
def test_sft_loss_equals_the_hf_models_own_shifted_loss(name):
    """A stock HF model shifts labels itself when given them; we call it without labels and
    shift once, so both must agree exactly — the original got ln(V) here (D-13)."""
    model = MODELS[name]()
    batch = chat_like_batch()
    objective = SFTObjective(SFTConfig())
    out = objective(model, batch)
    mean = out.loss_sum / objective.units(batch)
    hf = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    assert mean.item() == pytest.approx(hf.item(), rel=1e-6)
    assert mean.item() == pytest.approx(hand_shifted_mean_ce(model, batch).item(), rel=1e-6)
    assert mean.item() < torch.log(torch.tensor(64.0)).item() + 1.0  # sanity: an untrained model ≈ ln V


def test_sft_loss_equals_hand_shifted_ce_for_the_argonne_model():
    model = MODELS["argonne2"]()
    batch = chat_like_batch()
    objective = SFTObjective(SFTConfig())
    out = objective(model, batch)
    mean = out.loss_sum / objective.units(batch)
    assert mean.item() == pytest.approx(hand_shifted_mean_ce(model, batch).item(), rel=1e-6)
    # the model's own labelled forward follows the HF convention too: one shift, not two
    own = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    assert mean.item() == pytest.approx(own.item(), rel=1e-5)


def test_units_count_only_supervised_next_token_targets():
    batch = chat_like_batch(rows=3, length=12)
    # row r: prompt 2+r tokens, real length 12-r → targets at positions prompt..real-1
    expected = sum((12 - r) - (2 + r) for r in range(3))
    assert SFTObjective(SFTConfig()).units(batch).item() == expected
    out = SFTObjective(SFTConfig())(MODELS["qwen3"](), batch)
    assert out.metric_totals["supervised_tokens"].item() == expected
    assert out.metric_sums["nll"].item() == pytest.approx(out.loss_sum.item())


def test_prompt_and_padding_tokens_do_not_change_the_loss_gradient_targets():
    """Changing a label outside the supervised span (it is −100) changes nothing; changing a
    supervised label changes the loss."""
    model = MODELS["qwen3"]()
    batch = chat_like_batch()
    objective = SFTObjective(SFTConfig())
    base = objective(model, batch).loss_sum.item()
    other = {k: v.clone() for k, v in batch.items()}
    other["labels"][0, 0] = -100  # label of position 0 is never a target after the shift
    assert objective(model, other).loss_sum.item() == base
    other["labels"][0, 5] = (other["labels"][0, 5] + 1) % 64
    assert objective(model, other).loss_sum.item() != pytest.approx(base)


@pytest.mark.parametrize("name", ["qwen3", "argonne2"])
def test_chunked_ce_equals_plain_ce_values_and_gradients(name):
    batch = chat_like_batch()
    results = []
    for chunk in (0, 5):
        model = MODELS[name]()
        out = SFTObjective(SFTConfig(loss_chunk_size=chunk))(model, batch)
        out.loss_sum.backward()
        results.append((out.loss_sum.item(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    assert len(results[0][1]) == len(results[1][1])
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_global_normalisation_is_a_token_mean_not_a_mean_of_means():
    """Two micro-batches with different supervised counts: Σ loss_sum / Σ units equals the
    token-mean over the concatenated batch."""
    model = MODELS["qwen3"]()
    objective = SFTObjective(SFTConfig())
    a, b = chat_like_batch(rows=1, seed=3), chat_like_batch(rows=3, seed=4)
    a_out, b_out = objective(model, a), objective(model, b)
    combined = (a_out.loss_sum + b_out.loss_sum) / (objective.units(a) + objective.units(b))
    whole = {k: torch.cat([a[k], b[k]]) for k in a}
    whole_mean = objective(model, whole).loss_sum / objective.units(whole)
    assert combined.item() == pytest.approx(whole_mean.item(), rel=1e-6)


def test_token_nll_layout():
    model = MODELS["llama"]()
    batch = chat_like_batch()
    nll, mask = token_nll(model, batch)
    assert nll.shape == mask.shape == (3, 11)
    assert torch.equal(mask, batch["labels"][:, 1:] != -100)
    assert torch.all(nll[~mask] == 0) and torch.all(nll[mask] > 0)


def test_objectives_are_registered_with_documented_configs():
    registry = get_registry()
    for name in ("sft", "dpo", "cot"):
        component = registry.get("objective", name)
        import attrs

        for field in attrs.fields(component.config_cls):
            assert field.default is not attrs.NOTHING, f"{name}.{field.name} needs a default"
        objective = component.factory(component.config_cls())
        assert objective.required_fields
        assert objective.chat_model  # the trainer exports these with the chat EOS (D-5)
    assert registry.get("objective", "dpo").factory(registry.get("objective", "dpo").config_cls()).needs_reference_model
