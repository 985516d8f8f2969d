"""Recipe presets instantiate the published architectures exactly (original.md §1.8, original.md §2.3)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_fixtures import released_state

from argonne_kit.model import ArgonneForCausalLM, ArgonneV1ForCausalLM, build_model
from argonne_kit.recipe import resolve_recipe

BASES = Path(__file__).resolve().parents[2] / "recipes" / "bases"

PUBLISHED = {
    "argonne1_0": 275_827_680,
    "argonne1_5": 356_516_640,
    "argonne2_0": 4_918_072_800,
    "argonne2_5": 1_273_807_360,
    "argonne3_0": 2_882_162_688,
    "argonne3_5": 2_882_162_688,
    "argonne4_0": 1_038_492_672,
}

#: state-dict entries (tied lm_head included, as in the .pt checkpoints; 1.x with attn.mask)
STATE_DICT_ENTRIES = {"argonne1_0": 209, "argonne1_5": 277, "argonne3_0": 339, "argonne4_0": 451}


def _build(name: str):
    resolved = resolve_recipe(BASES / f"{name}.toml")
    with torch.device("meta"):
        return build_model(resolved.recipe.model)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_param_count_is_published(name):
    model = _build(name)
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED[name]
    if name in STATE_DICT_ENTRIES:
        assert len(model.state_dict()) == STATE_DICT_ENTRIES[name]


def test_preset_kinds_and_windows():
    assert isinstance(_build("argonne1_0"), ArgonneV1ForCausalLM)
    model = _build("argonne3_0")
    assert isinstance(model, ArgonneForCausalLM)
    # the 3.x window was never active in training (original.md §2.7): presets keep every layer full
    assert model.config.layer_windows() == [None] * 24
    assert model.lm_head.weight is model.model.embed_tokens.weight


def test_released_key_names_3_0():
    keys = set(released_state(_build("argonne3_0")))
    block = {k[len("blocks.0.") :] for k in keys if k.startswith("blocks.0.")}
    assert block == {
        "attn.q_proj.weight",
        "attn.k_proj.weight",
        "attn.v_proj.weight",
        "attn.o_proj.weight",
        "attn.q_norm.weight",
        "attn.k_norm.weight",
        "attn.v_norm_layer.weight",
        "input_norm.weight",
        "post_norm.weight",
        "attn_out_norm.weight",
        "mlp_out_norm.weight",
        "mlp.gate_proj.weight",
        "mlp.up_proj.weight",
        "mlp.down_proj.weight",
    }
    assert {k for k in keys if not k.startswith("blocks.")} == {"embed_tokens.weight", "norm.weight", "lm_head.weight"}


def test_released_key_names_1_0():
    state = released_state(_build("argonne1_0"))
    assert state["position_embedding"].shape == (1, 2048, 1296)
    assert state["blocks.0.attn.mask"].shape == (1, 1, 2048, 2048)
    block = {k[len("blocks.3.") :] for k in state if k.startswith("blocks.3.")}
    assert block == {
        "ln1.weight",
        "ln1.bias",
        "ln2.weight",
        "ln2.bias",
        "attn.mask",
        *(f"attn.{n}.{p}" for n in ("query", "key", "value", "proj") for p in ("weight", "bias")),
        *(f"mlp.{n}.{p}" for n in ("fc1", "fc2") for p in ("weight", "bias")),
    }
    assert {k for k in state if not k.startswith("blocks.")} == {
        "token_embedding.weight",
        "position_embedding",
        "ln_f.weight",
        "ln_f.bias",
        "head.weight",
    }


def test_vocab_padding_and_tokenizer_length():
    resolved = resolve_recipe(BASES / "argonne3_5.toml", ["model.pad_vocab_to_multiple_of=128"])
    with torch.device("meta"):
        model = build_model(resolved.recipe.model, vocab_size=151_669)
    assert model.config.vocab_size == 151_680
    # training-time count with the FP8 padding (original.md §1.6)
    assert sum(p.numel() for p in model.parameters()) == 2_882_196_480


def test_build_model_checks_tokenizer_length():
    from argonne_kit.errors import RecipeError

    resolved = resolve_recipe(BASES / "argonne2_5.toml")
    with torch.device("meta"):
        with pytest.raises(RecipeError, match="model.vocab_size"):
            build_model(resolved.recipe.model, vocab_size=151_670)
        model = build_model(resolved.recipe.model, vocab_size=151_000, eos_token_id=7)
    assert model.config.vocab_size == 151_669 and model.config.eos_token_id == 7
