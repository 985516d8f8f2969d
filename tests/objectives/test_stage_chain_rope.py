"""D-26: a chained stage takes RoPE θ and the context from its init model unless the recipe sets
them explicitly."""

from __future__ import annotations

import json

import pytest

from argonne_kit.errors import CheckpointError
from argonne_kit.recipe.api import load_recipe
from argonne_kit.recipe.model_sections import Argonne2ModelConfig
from argonne_kit.stage_chain import explicit_model_keys, inherit_position_settings, read_init_model_config


def test_unset_values_come_from_the_init_model_and_explicit_ones_stay(tmp_path):
    (tmp_path / "base.toml").write_text('[model]\nkind = "argonne2"\nmax_position_embeddings = 2048\n')
    (tmp_path / "stage.toml").write_text('extends = "base.toml"\n[model]\nhidden_size = 64\n')
    raw = load_recipe(tmp_path / "stage.toml")
    explicit = explicit_model_keys(raw)
    assert explicit == {"kind", "hidden_size", "max_position_embeddings"}
    recipe_cfg = Argonne2ModelConfig(hidden_size=64, max_position_embeddings=2048)  # rope_theta: default 1e6
    init = {"rope_theta": 10000.0, "max_position_embeddings": 1024, "hidden_size": 64}
    cfg, notes = inherit_position_settings(recipe_cfg, init, explicit)
    assert cfg.rope_theta == 10000.0  # not in the recipe: the checkpoint's θ, not a default
    assert cfg.max_position_embeddings == 2048  # set by the recipe: kept, and reported
    assert any("rope_theta" in n and "D-26" in n for n in notes)
    assert any("max_position_embeddings" in n and "explicit override" in n for n in notes)

    raw = load_recipe(tmp_path / "stage.toml", ["model.rope_theta=5e5"])  # the command line is explicit too
    overridden = Argonne2ModelConfig(hidden_size=64, max_position_embeddings=2048, rope_theta=5e5)
    cfg, _ = inherit_position_settings(overridden, init, explicit_model_keys(raw))
    assert cfg.rope_theta == 5e5


def test_read_init_config_from_hf_dir_and_our_checkpoint(tmp_path):
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "argonne2", "rope_theta": 1e6}))
    assert read_init_model_config("hf", hf)["rope_theta"] == 1e6
    ckpt = tmp_path / "step_00000010"
    ckpt.mkdir()
    (ckpt / "resolved_recipe.toml").write_text('[model]\nkind = "argonne2"\nrope_theta = 10000.0\n')
    assert read_init_model_config("checkpoint", ckpt)["rope_theta"] == 10000.0
    assert read_init_model_config("original", tmp_path / "checkpoint_step_1.pt") is None
    assert inherit_position_settings(Argonne2ModelConfig(), None, set()) == (Argonne2ModelConfig(), [])
    with pytest.raises(CheckpointError, match="cannot read the model settings"):
        read_init_model_config("hf", tmp_path / "missing")
