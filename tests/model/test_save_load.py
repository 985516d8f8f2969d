"""save_pretrained → from_pretrained, released-style directories (D-5, D-11, original.md §2.3)."""

from __future__ import annotations

import json

import torch
from model_fixtures import VOCAB, released_state
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM

from argonne_kit.model import ArgonneForCausalLM, ArgonneV1ForCausalLM

IDS = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(5))


def _logits(model):
    with torch.no_grad():
        return model(IDS).logits


def test_round_trip_identical_logits(make_model, tmp_path):
    model = make_model()
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert "lm_head.weight" not in keys and "model.embed_tokens.weight" in keys
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "argonne2" and "n_embd" not in saved and "block_size" not in saved

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, ArgonneForCausalLM)
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight  # tie restored (D-11)
    torch.testing.assert_close(loaded.model.rotary_emb.inv_freq, model.model.rotary_emb.inv_freq, rtol=0, atol=0)
    assert torch.equal(_logits(loaded), _logits(model))  # RoPE recomputed (P6)


def test_round_trip_v1(make_v1_model, tmp_path):
    model = make_v1_model()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, ArgonneV1ForCausalLM)
    assert loaded.lm_head.weight is not loaded.model.token_embedding.weight
    assert torch.equal(_logits(loaded), _logits(model))


def test_released_v1_key_names_load(make_v1_model, tmp_path):
    """A 1.x directory with the released key names (``head``, ``blocks.{i}``, ``ln_f`` …)."""
    model = make_v1_model()
    model.config.save_pretrained(tmp_path)
    save_file({k: v.contiguous() for k, v in released_state(model).items()}, str(tmp_path / "model.safetensors"))
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        assert {"head.weight", "blocks.0.attn.mask", "position_embedding"} <= set(f.keys())
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert torch.equal(_logits(loaded), _logits(model))
    loaded.save_pretrained(tmp_path / "again")  # saved under the current names
    with safe_open(tmp_path / "again" / "model.safetensors", "pt") as f:
        assert {"lm_head.weight", "model.layers.0.attn.mask", "model.position_embedding"} <= set(f.keys())


def test_released_style_directory_loads_with_plain_auto_class(make_model, tmp_path):
    """config.json with the original's field names (aliases included, a stale block_size and an
    auto_map to remote code), model.safetensors without the tied lm_head."""
    model = make_model(interleaved_local_attention=False, local_attention_window=None)
    cfg = model.config
    released = {
        "architectures": ["ArgonneModel"],
        "model_type": "argonne2",
        "auto_map": {
            "AutoConfig": "model.ArgonneConfig",
            "AutoModel": "model.ArgonneModel",
            "AutoModelForCausalLM": "model.ArgonneModel",
        },
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "intermediate_size": cfg.intermediate_size,
        "max_position_embeddings": 128,
        "rope_theta": cfg.rope_theta,
        "rms_norm_eps": 1e-6,
        "attention_dropout": 0.0,
        "hidden_dropout": 0.0,
        "sliding_window": None,
        "use_flash_attention": True,
        "use_gradient_checkpointing": False,
        "qk_norm": True,
        "v_norm": True,
        "sandwich_norm": True,
        "z_loss_weight": 0.0,
        "mtp_horizon": 1,
        "mtp_loss_weight": 0.0,
        "interleaved_local_attention": False,
        "local_attention_window": None,
        "logit_softcap": 15.0,
        "loss_chunk_size": 0,
        "tie_word_embeddings": True,
        "attention_bias": False,
        "mlp_bias": False,
        "n_embd": cfg.hidden_size,
        "n_layer": cfg.num_hidden_layers,
        "n_head": cfg.num_attention_heads,
        "block_size": 32,
        "eos_token_id": 3,
        "pad_token_id": None,
        "bos_token_id": None,
        "torch_dtype": "float32",
        "transformers_version": "4.57.1",
    }
    (tmp_path / "config.json").write_text(json.dumps(released))
    state = {k: v.contiguous() for k, v in released_state(model).items() if k != "lm_head.weight"}
    save_file(state, str(tmp_path / "model.safetensors"))

    config = AutoConfig.from_pretrained(tmp_path)
    assert config.max_position_embeddings == 128  # D-5: block_size=32 does not cap
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, ArgonneForCausalLM)
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
    assert torch.equal(_logits(loaded), _logits(model))
    assert loaded.config.eos_token_id == 3 and loaded.config.pad_token_id == 3
