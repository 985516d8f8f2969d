"""The stage recipes resolve to the published batch math and settings (original.md §6)."""

from pathlib import Path

import pytest

from argonne_kit.recipe.api import resolve_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize(
    "name, tokens_per_step, accum, nproc, lr",
    [
        ("argonne3_pretrain", 233_472, 2, 3, 3e-4),
        ("argonne3_continue_pretrain", 233_472, 2, 3, 3e-4),
        ("argonne2_5_pretrain", 245_760, 4, 3, 3e-4),
        ("argonne2_5_midtrain", 108_544, 1, 2, 1e-4),
        ("quickstart", 2_048, 2, None, 3e-3),
    ],
)
def test_stage_recipes_resolve_to_the_published_batch(name, tokens_per_step, accum, nproc, lr):
    resolved = resolve_recipe(RECIPES / f"{name}.toml")
    assert resolved.derived["train"]["tokens_per_step"] == tokens_per_step
    assert resolved.derived["train"]["grad_accum_steps"] == accum
    assert resolved.recipe.run.nproc == nproc
    assert resolved.recipe.optim.lr == lr


def test_chained_stages_point_at_their_predecessors():
    cont = resolve_recipe(RECIPES / "argonne3_continue_pretrain.toml").recipe
    assert cont.init.from_ == resolve_recipe(RECIPES / "argonne3_pretrain.toml").recipe.run.dir
    assert cont.init.carry == "weights+optimizer"
    mid = resolve_recipe(RECIPES / "argonne2_5_midtrain.toml")
    assert mid.recipe.init.from_ == resolve_recipe(RECIPES / "argonne2_5_pretrain.toml").recipe.run.dir
    assert mid.recipe.model.config.max_position_embeddings == mid.recipe.train.seq_len == 13568
    assert mid.recipe.model.config.rope_theta == 10000.0
    assert mid.derived["train"]["total_steps"] == 16_000_000_000 // 108_544


def test_quickstart_is_argonne3_shaped_and_decays():
    resolved = resolve_recipe(RECIPES / "quickstart.toml")
    model = resolved.recipe.model.config
    assert (model.qk_norm, model.v_norm, model.sandwich_norm, model.logit_softcap, model.rope_theta) == (
        True,
        True,
        True,
        15.0,
        1e6,
    )
    assert model.num_attention_heads // model.num_key_value_heads == 3  # GQA 12/4 like 3.0
    assert resolved.derived["schedule"]["lr_last"] == pytest.approx(3e-4)


def test_quickstart_chat_is_the_sft_then_dpo_pipeline():
    from argonne_kit.recipe.pipeline import load_pipeline

    stages = load_pipeline(RECIPES / "quickstart_chat.toml")
    assert [s.recipe.name for s in stages] == ["quickstart_sft.toml", "quickstart_dpo.toml"]
    sft, dpo = (resolve_recipe(s.recipe, list(s.overrides)).recipe for s in stages)
    assert resolve_recipe(RECIPES / "quickstart.toml").recipe.run.dir == sft.init.from_
    assert (sft.objective.kind, dpo.objective.kind) == ("sft", "dpo")
    assert dpo.init.from_ == sft.run.dir  # DPO starts from, and is referenced against, the SFT model
    assert load_pipeline(RECIPES / "quickstart_sft.toml") is None  # a recipe is not a pipeline
