"""Original ``.pt`` training checkpoints: prefixes, FP8-padded vocabulary, loud key errors (D-22)."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import VOCAB, released_state

from argonne_kit.errors import CheckpointError
from argonne_kit.model import load_original_checkpoint

IDS = torch.randint(0, VOCAB, (1, 10), generator=torch.Generator().manual_seed(6))


def _pretrain_checkpoint(model, prefix="module._orig_mod.", pad_rows=0):
    """What pretrain.py wrote: model_state_dict (tied lm_head included) plus training state."""
    state = {}
    for key, value in released_state(model).items():
        if key in ("embed_tokens.weight", "lm_head.weight") and pad_rows:
            value = torch.cat([value, torch.randn(pad_rows, value.shape[1])])
        state[prefix + key] = value.clone()
    if pad_rows and model.config.tie_word_embeddings:
        state[prefix + "lm_head.weight"] = state[prefix + "embed_tokens.weight"]
    return {
        "global_step": 7,
        "tokens_processed": 1234,
        "model_state_dict": state,
        "optimizer_state_dict": {"state": {}, "param_groups": []},
    }


def test_pt_checkpoint_with_prefixes_and_padded_vocab(make_model, tmp_path):
    source = make_model(seed=1)
    path = tmp_path / "checkpoint_step_7.pt"
    torch.save(_pretrain_checkpoint(source, pad_rows=11), path)  # 97 → 108 rows
    target = make_model(seed=2)
    report = load_original_checkpoint(path, target)
    assert set(report["resized"]) == {"model.embed_tokens.weight", "lm_head.weight"}
    assert target.lm_head.weight is target.model.embed_tokens.weight
    with torch.no_grad():
        assert torch.equal(target(IDS).logits, source(IDS).logits)


def test_padded_model_keeps_its_extra_rows(make_model):
    source = make_model(seed=1)
    target = make_model(seed=2, vocab_size=VOCAB + 31)
    extra = target.model.embed_tokens.weight[VOCAB:].clone()
    load_original_checkpoint({"model_state_dict": source.state_dict()}, target)  # the kit's own key names
    assert torch.equal(target.model.embed_tokens.weight[:VOCAB], source.model.embed_tokens.weight)
    assert torch.equal(target.model.embed_tokens.weight[VOCAB:], extra)


def test_v1_state_dict_with_mask_buffers(make_v1_model):
    source, target = make_v1_model(seed=1), make_v1_model(seed=2)
    load_original_checkpoint({"module." + k: v for k, v in released_state(source).items()}, target)
    with torch.no_grad():
        assert torch.equal(target(IDS).logits, source(IDS).logits)


def _pipeline_staged(state: dict, stages: int, per_stage: int) -> dict:
    """Argonne 1.0's mp_pretrain.py layout: blocks as pipeline_stages.{stage}.{j}.*"""
    out = {}
    for key, value in state.items():
        if key.startswith("blocks."):
            _, i, rest = key.split(".", 2)
            key = f"pipeline_stages.{int(i) // per_stage}.{int(i) % per_stage}.{rest}"
        out[key] = value
    assert len({k.split(".")[1] for k in out if k.startswith("pipeline_stages.")}) == stages
    return out


def test_v1_pipeline_parallel_checkpoint_is_renumbered(make_v1_model, tmp_path):
    """5 blocks over 3 GPUs = ceil(5/3) = 2 per stage, the last stage holding 1 (original.md §2.3)."""
    source, target = make_v1_model(seed=1, n_layer=5), make_v1_model(seed=2, n_layer=5)
    path = tmp_path / "mp_checkpoint.pt"
    torch.save({"model_state_dict": _pipeline_staged(released_state(source), stages=3, per_stage=2)}, path)
    load_original_checkpoint(path, target)
    with torch.no_grad():
        assert torch.equal(target(IDS).logits, source(IDS).logits)
    # a stage missing in the middle is refused, naming the layout
    broken = {
        k: v
        for k, v in _pipeline_staged(released_state(source), 3, 2).items()
        if not k.startswith("pipeline_stages.1.1.")
    }
    with pytest.raises(CheckpointError, match="stage 1: 1 blocks"):
        load_original_checkpoint(broken, target)


def test_missing_and_unexpected_keys_are_named(make_model):
    state = released_state(make_model())
    del state["blocks.1.attn.k_norm.weight"]
    state["blocks.0.attn.rotary.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError) as err:
        load_original_checkpoint(state, make_model())
    message = str(err.value)
    assert "model.layers.1.attn.k_norm.weight" in message and "model.layers.0.attn.rotary.weight" in message


def test_wrong_shape_and_untied_head_are_refused(make_model, tmp_path):
    state = released_state(make_model())
    state["blocks.0.mlp.up_proj.weight"] = torch.zeros(5, 64)
    with pytest.raises(CheckpointError, match=r"model.layers.0.mlp.up_proj.weight has shape \(5, 64\)"):
        load_original_checkpoint(state, make_model())
    state = {k: v.clone() for k, v in released_state(make_model()).items()}
    state["lm_head.weight"] += 1
    with pytest.raises(CheckpointError, match="tie_word_embeddings=false"):
        load_original_checkpoint(state, make_model())
    with pytest.raises(CheckpointError, match="not found"):
        load_original_checkpoint(tmp_path / "nope.pt", make_model())


def test_a_model_that_is_not_an_argonne_causal_lm_is_refused(make_model):
    from argonne_kit.model import ArgonneForSequenceClassification

    state = released_state(make_model())
    classifier = ArgonneForSequenceClassification(make_model().config)
    with pytest.raises(TypeError, match="not ArgonneForSequenceClassification"):
        load_original_checkpoint(state, classifier)
