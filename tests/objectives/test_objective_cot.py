"""CoT objective: the thinking span (from a data-source mask or from token ids) and its weight."""

from __future__ import annotations

import pytest
import torch
from objective_fixtures import tiny_qwen3

from argonne_kit.errors import DataError, RecipeError
from argonne_plugins.objectives.cot import CoTConfig, CoTObjective, think_span_from_ids
from argonne_plugins.objectives.sft import SFTConfig, SFTObjective

OPEN, CLOSE = 60, 61


def cot_batch() -> dict[str, torch.Tensor]:
    """Row 0: prompt | <think> 3 tokens </think> | 4 answer tokens; row 1: no think block."""
    ids = torch.tensor(
        [
            [5, 6, 7, OPEN, 10, 11, 12, CLOSE, 20, 21, 22, 23],
            [5, 6, 7, 8, 30, 31, 32, 33, 34, 35, 0, 0],
        ]
    )
    labels = ids.clone()
    labels[:, :3] = -100
    labels[1, 10:] = -100
    mask = (labels != -100) | (torch.arange(12) < 3)
    return {"input_ids": ids, "labels": labels, "attention_mask": mask.long()}


def test_think_span_from_ids_covers_open_through_close():
    ids = torch.tensor([[1, OPEN, 2, 3, CLOSE, 4, OPEN, 5, CLOSE, 6, OPEN, 7]])
    span = think_span_from_ids(ids, OPEN, CLOSE)
    assert span.int().tolist() == [[0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1]]


def test_weight_one_is_plain_sft():
    model, batch = tiny_qwen3(), cot_batch()
    sft = SFTObjective(SFTConfig())(model, batch)
    cot = CoTObjective(CoTConfig(think_open_id=OPEN, think_close_id=CLOSE))(model, batch)
    assert cot.loss_sum.item() == pytest.approx(sft.loss_sum.item(), rel=1e-7)
    assert cot.metric_totals["think_tokens"].item() == 5  # <think>, 3 tokens, </think>
    assert (cot.metric_sums["nll_think"] + cot.metric_sums["nll_answer"]).item() == pytest.approx(
        cot.metric_sums["nll"].item(), rel=1e-6
    )


@pytest.mark.parametrize("source", ["ids", "mask"])
def test_think_weight_scales_only_the_thinking_tokens(source):
    model, batch = tiny_qwen3(), cot_batch()
    if source == "mask":
        batch["think_mask"] = think_span_from_ids(batch["input_ids"], OPEN, CLOSE)
        kwargs = {}
    else:
        kwargs = {"think_open_id": OPEN, "think_close_id": CLOSE}
    full = CoTObjective(CoTConfig(**kwargs))(model, batch)
    think, answer = full.metric_sums["nll_think"].item(), full.metric_sums["nll_answer"].item()
    for weight in (0.0, 0.25):
        out = CoTObjective(CoTConfig(think_weight=weight, **kwargs))(model, batch)
        assert out.loss_sum.item() == pytest.approx(answer + weight * think, rel=1e-6)
        assert out.metric_sums["nll"].item() == pytest.approx(think + answer, rel=1e-6)
    # weight 0: the thinking labels carry no gradient at all
    out = CoTObjective(CoTConfig(think_weight=0.0, **kwargs))(model, batch)
    masked = {k: v.clone() for k, v in batch.items()}
    masked["labels"][0, 3:8] = -100
    plain = SFTObjective(SFTConfig())(model, masked)
    assert out.loss_sum.item() == pytest.approx(plain.loss_sum.item(), rel=1e-6)
    # the unit stays the supervised token, whatever the weights
    assert CoTObjective(CoTConfig(think_weight=0.0, **kwargs)).units(batch) == SFTObjective(SFTConfig()).units(batch)


def test_a_weighted_span_needs_a_way_to_find_it():
    with pytest.raises(DataError, match="think_mask"):
        CoTObjective(CoTConfig(think_weight=0.5))(tiny_qwen3(), cot_batch())
    with pytest.raises(RecipeError, match="both"):
        CoTConfig(think_open_id=OPEN).resolve(None)
