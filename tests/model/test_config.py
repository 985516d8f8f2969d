"""ArgonneConfig: original field names, legacy aliases without the D-5 cap, init (original.md §1.9)."""

from __future__ import annotations

import json

import pytest
import torch

from argonne_kit.model import ArgonneConfig, ArgonneForCausalLM, ArgonneV1Config
from argonne_kit.model.config import LEGACY_ALIASES
from argonne_kit.model_shape import ARGONNE2_DEFAULTS
from argonne_kit.recipe.model_sections import Argonne2ModelConfig


def test_defaults_are_the_recipe_sections_and_derived_by_its_rules():
    cfg = ArgonneConfig()
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (
        3072,
        24,
        12,
        6,
    )
    assert (cfg.intermediate_size, cfg.max_position_embeddings, cfg.rope_theta) == (8192, 1024, 1e6)
    assert cfg.layer_windows() == [None] * 24  # the advertised-but-never-trained window is off (D-4)
    # one set of defaults, read by the recipe section and the HF config alike
    section, derived = Argonne2ModelConfig(), {"num_key_value_heads": 6, "intermediate_size": 8192}
    for name, value in ARGONNE2_DEFAULTS.items():
        assert getattr(section, "logit_softcap" if name == "final_logit_softcapping" else name) == value, name
        assert getattr(cfg, name) == derived.get(name, value), name
    # the original class's defaults (4 KV heads, window 256 on odd layers) when a config states them
    original = ArgonneConfig(num_key_value_heads=4, interleaved_local_attention=True, local_attention_window=256)
    assert original.num_key_value_heads == 4 and original.layer_windows()[:4] == [None, 256, None, 256]
    assert ArgonneConfig(num_key_value_heads=None, num_attention_heads=14, hidden_size=1792).num_key_value_heads == 7
    assert ArgonneConfig(intermediate_size=None, hidden_size=4080, num_attention_heads=24).intermediate_size == 11008
    assert ArgonneConfig(interleaved_local_attention=True, local_attention_window=0).layer_windows() == [None] * 24
    assert ArgonneConfig(eos_token_id=5).pad_token_id == 5


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"hidden_size": 1792, "num_attention_heads": 14, "num_hidden_layers": 3},
        {"hidden_size": 4080, "num_attention_heads": 24, "num_key_value_heads": 8, "num_hidden_layers": 5},
        {"hidden_size": 64, "num_attention_heads": 4, "interleaved_local_attention": True, "local_attention_window": 8},
        {"hidden_size": 96, "num_attention_heads": 6, "intermediate_size": 200, "num_hidden_layers": 2},
    ],
)
def test_the_recipe_and_the_model_derive_the_same_shape(fields):
    section = Argonne2ModelConfig(**fields)
    derived = section.derive()
    config = section.hf_config(vocab_size=100)
    model_windows = [w or 0 for w in config.layer_windows()]
    assert derived == {
        "head_dim": config.head_dim,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
        "intermediate_size": config.intermediate_size,
        "layer_windows": model_windows,
    }
    with torch.device("meta"):
        model = section.model_class()(config)
    block = model.model.layers[0]
    assert block.attn.k_proj.weight.shape[0] == derived["num_key_value_heads"] * derived["head_dim"]
    assert block.mlp.gate_proj.weight.shape[0] == derived["intermediate_size"]


def test_stale_block_size_never_caps_context(caplog):
    # D-5: the original let block_size=32 override max_position_embeddings=64
    cfg = ArgonneConfig.from_dict({"model_type": "argonne2", "block_size": 32, "max_position_embeddings": 64})
    assert cfg.max_position_embeddings == 64
    assert "block_size" in caplog.text


def test_alias_alone_is_adopted_and_never_saved(tmp_path):
    cfg = ArgonneConfig(n_embd=128, n_layer=3, n_head=8, block_size=512, num_key_value_heads=2)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.max_position_embeddings) == (
        128,
        3,
        8,
        512,
    )
    cfg.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert not set(LEGACY_ALIASES) & set(saved)
    assert saved["hidden_size"] == 128 and saved["max_position_embeddings"] == 512
    again = ArgonneConfig.from_pretrained(tmp_path)
    assert again.to_dict() == cfg.to_dict() | {"_name_or_path": again.to_dict()["_name_or_path"]}


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"hidden_size": 100, "num_attention_heads": 3}, "does not divide hidden_size"),
        ({"num_attention_heads": 12, "num_key_value_heads": 5}, "does not divide num_attention_heads"),
        ({"sliding_window": 128}, "interleaved_local_attention"),
        ({"attention_dropout": 0.1}, "attention_dropout"),
    ],
)
def test_impossible_configs_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        ArgonneConfig(**bad)


def test_v1_config_reads_hf_standard_names():
    cfg = ArgonneV1Config(n_layer=12, n_head=12)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.max_position_embeddings) == (
        1296,
        12,
        12,
        2048,
    )
    with pytest.raises(ValueError, match="untied"):
        ArgonneV1Config(tie_word_embeddings=True)


def test_init_follows_spec_1_9():
    torch.manual_seed(0)
    d, layers = 256, 8
    cfg = ArgonneConfig(
        vocab_size=512,
        hidden_size=d,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=512,
    )
    model = ArgonneForCausalLM(cfg)
    base, residual = d**-0.5, (2 * layers) ** -0.5
    block = model.model.layers[3]
    assert block.attn.q_proj.weight.std().item() == pytest.approx(base, rel=0.03)
    assert block.mlp.gate_proj.weight.std().item() == pytest.approx(base, rel=0.03)
    assert block.attn.o_proj.weight.std().item() == pytest.approx(residual, rel=0.03)
    assert block.mlp.down_proj.weight.std().item() == pytest.approx(residual, rel=0.03)
    assert model.model.embed_tokens.weight.std().item() == pytest.approx(base, rel=0.03)
    assert torch.equal(block.attn.q_norm.weight, torch.ones(64))
    assert torch.equal(block.mlp_out_norm.weight, torch.ones(d))
    assert model.lm_head.weight is model.model.embed_tokens.weight


def test_softcap_has_the_trl_name_and_reads_the_earlier_one(tmp_path):
    assert ArgonneConfig().final_logit_softcapping == 15.0
    older = ArgonneConfig.from_dict({"model_type": "argonne2", "logit_softcap": 20.0})
    assert older.final_logit_softcapping == older.softcap == 20.0
    off = ArgonneConfig.from_dict({"model_type": "argonne2", "logit_softcap": 0.0})
    assert off.final_logit_softcapping is None and off.softcap is None  # off is None, never a 0 cap
    older.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["final_logit_softcapping"] == 20.0 and "logit_softcap" not in saved
