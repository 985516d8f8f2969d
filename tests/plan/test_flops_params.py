"""Parameter counts, FLOPs per token and the time/MFU arithmetic of ``plan``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from argonne_kit.model import build_model
from argonne_kit.plan.flops import flops_per_token
from argonne_kit.plan.gpus import GPUS
from argonne_kit.plan.params import count_parameters, model_shape
from argonne_kit.plan.report import make_plan
from argonne_kit.recipe import resolve_recipe
from argonne_kit.recipe.model_sections import Argonne2ModelConfig

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize(
    "d,layers,heads,kv,ffn,vocab,seq,tied",
    [(64, 2, 4, 2, 128, 512, 64, True), (96, 3, 3, 1, 256, 1000, 128, False), (128, 2, 8, 8, 320, 300, 256, True)],
)
def test_flops_per_token_match_torch_flop_counter(d, layers, heads, kv, ffn, vocab, seq, tied):
    cfg = Argonne2ModelConfig(
        vocab_size=vocab,
        hidden_size=d,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        intermediate_size=ffn,
        max_position_embeddings=seq,
        tie_word_embeddings=tied,
    )
    model = build_model(cfg)
    # the math backend's matmuls are visible to the counter (CPU's fused SDPA kernel has no formula)
    model.set_attention_backend("math")
    ids = torch.randint(0, vocab, (2, seq))
    with FlopCounterMode(display=False) as counter:
        logits = model(input_ids=ids).logits
        torch.nn.functional.cross_entropy(logits.reshape(-1, vocab).float(), ids.reshape(-1)).backward()
    counted = counter.get_total_flops() / ids.numel()
    planned = flops_per_token(model_shape(model), count_parameters(model, vocab).matmul, seq)
    assert planned == pytest.approx(counted, rel=0.02)


def test_windowed_layers_count_their_window():
    cfg = Argonne2ModelConfig(
        vocab_size=100,
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        interleaved_local_attention=True,
        local_attention_window=32,
    )
    shape = model_shape(build_model(cfg))
    full = Argonne2ModelConfig(vocab_size=100, hidden_size=64, num_hidden_layers=4, num_attention_heads=4)
    matmul = count_parameters(build_model(cfg), 100).matmul
    # two full layers at 256 keys plus two windowed layers at 32 keys, 12·d FLOPs per key
    assert flops_per_token(shape, matmul, 256) == 6 * matmul + 12 * 64 * (2 * 256 + 2 * 32)
    assert flops_per_token(model_shape(build_model(full)), matmul, 256) == 6 * matmul + 12 * 64 * 4 * 256


def test_argonne3_pretrain_published_numbers():
    resolved = resolve_recipe(RECIPES / "argonne3_pretrain.toml")
    plan = make_plan(resolved, gpu=GPUS["h200"], gpus=3, mfu=0.4, tokens_per_s=46_000, data_tokens=20_839_021_454)
    assert plan.params.total == 2_882_162_688
    assert plan.params.embedding == 151_669 * 3072
    assert plan.flops_per_token / 1e9 == pytest.approx(18.2, abs=0.05)
    assert plan.implied_mfu() == pytest.approx(46_000 * plan.flops_per_token / (3 * 989e12))
    assert plan.total_steps == 20_839_021_454 // 233_472
    hours = plan.phase_tokens * plan.flops_per_token / (3 * 989e12 * 0.4) / 3600
    assert plan.hours() == pytest.approx(hours)


def test_padded_vocabulary_is_reported():
    resolved = resolve_recipe(RECIPES / "argonne3_pretrain.toml", ["model.pad_vocab_to_multiple_of=128"])
    plan = make_plan(resolved, gpu=GPUS["h200"], gpus=3, mfu=0.4)
    assert plan.params.vocab_rows == 151_680 and plan.params.vocab_unpadded == 151_669
    assert plan.params.total == 2_882_196_480 and plan.params.total_unpadded == 2_882_162_688


@pytest.mark.parametrize("recipe", sorted(p.name for p in RECIPES.glob("argonne*.toml")))
def test_every_release_recipe_plans(recipe):
    resolved = resolve_recipe(RECIPES / recipe)
    plan = make_plan(
        resolved, gpu=GPUS["h100"], gpus=resolved.recipe.run.nproc or 1, mfu=0.4, vocab_size=151_669, data_tokens=10**9
    )
    assert plan.params.total > 10**8
    if plan.shape.family != "argonne2":  # the memory model covers the argonne2 family only
        assert plan.memory is None and any("not planned for 1.x" in w for w in plan.warnings)
        return
    assert plan.memory.peak > plan.memory.components["weights (fp32)"]
    assert plan.fits() in ("fits", "tight", "does not fit")
