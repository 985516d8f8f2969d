"""DPO objective: loss types, score modes, rewards and metrics against hand computation; the
reference model; precomputed reference scores; a few optimizer steps raise the margin."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
from objective_fixtures import BigramModel, hand_logprob_sum, preference_batch, tiny_qwen3

from argonne_kit.errors import DataError, PluginError, RecipeError
from argonne_plugins.objectives.dpo import (
    DPOConfig,
    DPOObjective,
    preference_loss,
)

LN2 = math.log(2.0)


def logsigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def hand_loss(h: float, beta: float, loss_type: str, eps: float) -> float:
    if loss_type == "sigmoid":
        return -(1 - eps) * logsigmoid(beta * h) - eps * logsigmoid(-beta * h)
    if loss_type == "ipo":
        return (h - 1 / (2 * beta)) ** 2
    return max(0.0, 1 - beta * h)


@pytest.mark.parametrize("loss_type,eps", [("sigmoid", 0.0), ("sigmoid", 0.05), ("ipo", 0.0), ("hinge", 0.0)])
def test_preference_loss_matches_hand_formula_on_fixed_scores(loss_type, eps):
    pc = torch.tensor([-3.0, -10.0, -2.5, -7.0], dtype=torch.float64)
    pr = torch.tensor([-4.0, -9.0, -2.5, -1.0], dtype=torch.float64)
    rc = torch.tensor([-3.5, -9.5, -3.0, -6.0], dtype=torch.float64)
    rr = torch.tensor([-3.8, -9.2, -2.0, -2.0], dtype=torch.float64)
    beta = 0.2
    out = preference_loss(pc, pr, rc, rr, beta=beta, loss_type=loss_type, label_smoothing=eps)
    for i in range(4):
        h = (pc[i] - pr[i] - (rc[i] - rr[i])).item()
        assert out["loss"][i].item() == pytest.approx(hand_loss(h, beta, loss_type, eps), rel=1e-12)
        chosen = beta * (pc[i] - rc[i]).item()
        rejected = beta * (pr[i] - rr[i]).item()
        assert out["rewards_chosen"][i].item() == pytest.approx(chosen, rel=1e-12)
        assert out["rewards_rejected"][i].item() == pytest.approx(rejected, rel=1e-12)
        assert out["reward_margin"][i].item() == pytest.approx(chosen - rejected, rel=1e-12)
        assert out["reward_accuracy"][i].item() == float(chosen > rejected)
    assert out["reward_accuracy"].tolist() == [1.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("score", ["sum", "avg"])
@pytest.mark.parametrize("loss_type,eps", [("sigmoid", 0.0), ("sigmoid", 0.1), ("ipo", 0.0), ("hinge", 0.0)])
@pytest.mark.parametrize("sft_weight", [0.0, 0.3])
def test_objective_end_to_end_matches_hand_computation(score, loss_type, eps, sft_weight):
    """Shift, masking, padding of unequal halves, score mode, loss, rewards and the chosen NLL
    term, all recomputed in plain Python from the bigram table."""
    policy, reference = BigramModel(seed=0), BigramModel(seed=1)
    batch = preference_batch(pairs=3)
    for key in batch:
        if key.endswith("input_ids") or key.endswith("labels"):
            batch[key] = batch[key].remainder(8).where(batch[key] != -100, -100)
    beta = 0.5
    objective = DPOObjective(
        DPOConfig(beta=beta, loss_type=loss_type, label_smoothing=eps, score=score, chosen_sft_weight=sft_weight)
    )
    objective.attach_reference(reference)
    out = objective(policy, batch)

    expected_loss, sums = 0.0, {"rewards_chosen": 0.0, "rewards_rejected": 0.0, "reward_accuracy": 0.0}
    for row in range(3):
        scores = {}
        for name, model in (("pi", policy), ("ref", reference)):
            for half in ("chosen", "rejected"):
                ids = batch[f"{half}_input_ids"][row].tolist()
                labels = batch[f"{half}_labels"][row].tolist()
                total, count = hand_logprob_sum(model.table.detach(), ids, labels)
                scores[name, half] = total / count if score == "avg" else total
                if name == "pi" and half == "chosen":
                    chosen_nll = -total / count
        h = (scores["pi", "chosen"] - scores["pi", "rejected"]) - (scores["ref", "chosen"] - scores["ref", "rejected"])
        expected_loss += hand_loss(h, beta, loss_type, eps) + sft_weight * chosen_nll
        rc = beta * (scores["pi", "chosen"] - scores["ref", "chosen"])
        rr = beta * (scores["pi", "rejected"] - scores["ref", "rejected"])
        sums["rewards_chosen"] += rc
        sums["rewards_rejected"] += rr
        sums["reward_accuracy"] += float(rc > rr)
    assert objective.units(batch).item() == 3
    assert out.loss_sum.item() == pytest.approx(expected_loss, rel=1e-5, abs=1e-6)
    for name, value in sums.items():
        assert out.metric_sums[name].item() == pytest.approx(value, rel=1e-5, abs=1e-6)
    margin = sums["rewards_chosen"] - sums["rewards_rejected"]
    assert out.metric_sums["reward_margin"].item() == pytest.approx(margin, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("loss_type", ["sigmoid", "hinge"])
def test_gradients_vanish_as_beta_goes_to_zero(loss_type):
    batch = preference_batch()
    norms = []
    for beta in (1.0, 1e-3, 1e-6):
        policy = tiny_qwen3(seed=0)
        objective = DPOObjective(DPOConfig(beta=beta, loss_type=loss_type))
        objective.attach_reference(tiny_qwen3(seed=1))
        objective(policy, batch).loss_sum.backward()
        norms.append(torch.sqrt(sum((p.grad**2).sum() for p in policy.parameters())).item())
    assert norms[0] > 1e-3
    # the gradient scales with β: 1e-3·β and 1e-6·β shrink it by about those factors
    assert norms[1] < norms[0] * 3e-3
    assert norms[2] < norms[0] * 3e-6


@pytest.mark.parametrize("eps", [0.0, 0.05])
def test_policy_equal_to_reference_gives_ln2(eps):
    policy = tiny_qwen3()
    objective = DPOObjective(DPOConfig(beta=0.1, label_smoothing=eps, score="avg"))
    objective.attach_reference(copy.deepcopy(policy))
    batch = preference_batch()
    out = objective(policy, batch)
    units = objective.units(batch)
    assert (out.loss_sum / units).item() == pytest.approx(LN2, abs=1e-6)
    assert out.metric_sums["reward_margin"].abs().item() < 1e-6
    assert out.metric_sums["reward_accuracy"].item() == 0.0  # ties are not wins


def test_attached_reference_is_frozen_and_receives_no_gradient():
    policy, reference = tiny_qwen3(0), tiny_qwen3(1)
    objective = DPOObjective(DPOConfig())
    objective.attach_reference(reference)
    objective(policy, preference_batch()).loss_sum.backward()
    assert all(p.grad is None and not p.requires_grad for p in reference.parameters())
    assert not reference.training
    assert any(p.grad is not None for p in policy.parameters())


def test_padding_pairs_do_not_count():
    batch = preference_batch(pairs=3)
    for half in ("chosen", "rejected"):
        batch[f"{half}_labels"][2] = -100  # a filler row of a final partial batch
    objective = DPOObjective(DPOConfig())
    objective.attach_reference(tiny_qwen3(1))
    policy = tiny_qwen3(0)
    full = objective(policy, batch)
    first_two = {k: v[:2] for k, v in batch.items()}
    part = objective(policy, first_two)
    assert objective.units(batch).item() == 2
    assert full.loss_sum.item() == pytest.approx(part.loss_sum.item(), rel=1e-6)


def precompute(objective: DPOObjective, reference, batches) -> int:
    """The trainer's precomputation pass (argonne_kit.train.reference) in one process; the
    number of reference passes it made."""
    passes = 0
    for batch in batches:
        if objective.reference_pass_needed(batch):
            objective.record_reference_pass(reference, batch, batch)
            passes += 1
    return passes


@pytest.mark.parametrize("score", ["sum", "avg"])
def test_precomputed_reference_scores_give_the_same_loss(score):
    policy, reference = tiny_qwen3(0), tiny_qwen3(1)
    batches = [preference_batch(pairs=3, seed=s) for s in (2, 3)]
    live = DPOObjective(DPOConfig(score=score, beta=0.3))
    live.attach_reference(reference)
    offline = DPOObjective(DPOConfig(score=score, beta=0.3, precompute_reference=True))
    assert offline.precomputes_reference() and not live.precomputes_reference()
    assert precompute(offline, reference, batches) == 2
    assert len(offline.precomputed) == 6 and offline.reference is None  # no reference kept
    # a second epoch of the same pairs needs no reference pass
    assert precompute(offline, reference, batches) == 0
    for batch in batches:
        want = live(policy, batch)
        got = offline(policy, offline.prepare_batch(dict(batch)))
        assert got.loss_sum.item() == pytest.approx(want.loss_sum.item(), rel=1e-5)
        assert got.metric_sums["reward_margin"].item() == pytest.approx(
            want.metric_sums["reward_margin"].item(), rel=1e-4, abs=1e-6
        )
    # reordered rows (another epoch's order): the content key still finds them
    swapped = {k: v.flip(0) for k, v in batches[0].items()}
    assert offline(policy, offline.prepare_batch(swapped)).loss_sum.item() == pytest.approx(
        live(policy, swapped).loss_sum.item(), rel=1e-5
    )


def test_unscored_pair_is_a_clear_error():
    objective = DPOObjective(DPOConfig(precompute_reference=True))
    precompute(objective, tiny_qwen3(1), [preference_batch(seed=2)])
    assert objective.reference_pass_needed(preference_batch(seed=9))
    with pytest.raises(DataError, match="not scored by the reference precomputation"):
        objective.prepare_batch(preference_batch(seed=9))


def test_missing_reference_is_a_clear_error():
    precomputed = DPOObjective(DPOConfig(precompute_reference=True))
    precomputed.attach_reference(tiny_qwen3(1))
    with pytest.raises(PluginError, match="did not run the reference precomputation"):
        precomputed(tiny_qwen3(), preference_batch())  # never silently falls back to the live model
    objective = DPOObjective(DPOConfig())
    with pytest.raises(PluginError, match="no reference model attached"):
        objective(tiny_qwen3(), preference_batch())
    with pytest.raises(RecipeError, match="init.from"):
        objective.reference_source(None)
    assert objective.reference_source("runs/sft") == "runs/sft"
    assert DPOObjective(DPOConfig(reference="models/ref")).reference_source("runs/sft") == "models/ref"


def test_label_smoothing_only_with_sigmoid():
    with pytest.raises(RecipeError, match="label-smoothed"):
        DPOConfig(loss_type="ipo", label_smoothing=0.1).resolve(None)
    DPOConfig(loss_type="sigmoid", label_smoothing=0.1).resolve(None)
    with pytest.raises(ValueError):
        DPOConfig(label_smoothing=0.5)
    with pytest.raises(ValueError):
        DPOConfig(beta=0.0)


def test_chunked_scores_equal_unchunked():
    policy, reference = tiny_qwen3(0), tiny_qwen3(1)
    batch = preference_batch()
    outs = []
    for chunk in (0, 4):
        objective = DPOObjective(DPOConfig(score="avg", loss_chunk_size=chunk, chosen_sft_weight=0.1))
        objective.attach_reference(reference)
        policy.zero_grad()
        out = objective(policy, batch)
        out.loss_sum.backward()
        outs.append((out.loss_sum.item(), [p.grad.clone() for p in policy.parameters()]))
    assert outs[0][0] == pytest.approx(outs[1][0], rel=1e-6)
    for a, b in zip(outs[0][1], outs[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "hinge"])
def test_a_few_dpo_steps_raise_the_margin(loss_type):
    policy = tiny_qwen3(0).train()
    objective = DPOObjective(DPOConfig(beta=0.1, loss_type=loss_type, score="avg"))
    objective.attach_reference(copy.deepcopy(policy))
    batch = preference_batch(pairs=4)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3, weight_decay=0.0)
    margins = []
    for _ in range(6):
        out = objective(policy, batch)
        margins.append(out.metric_sums["reward_margin"].item() / 4)
        optimizer.zero_grad()
        (out.loss_sum / objective.units(batch)).backward()
        optimizer.step()
    assert margins[0] == pytest.approx(0.0, abs=1e-6)
    assert margins[-1] > 0.05, margins
    assert all(b > a for a, b in itertools.pairwise(margins)), margins
