"""FP8 training (torchao float8, tensorwise dynamic scaling) through its emulation mode on CPU:
which linears are converted, the numerics of a converted linear, the CPU refusal of real FP8, and
the padded vocabulary trained, exported trimmed and loaded into a later stage."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from argonne_kit.cli import main
from argonne_kit.errors import RecipeError
from argonne_kit.model import build_model
from argonne_kit.recipe.model_sections import Argonne2ModelConfig
from argonne_kit.train.checkpoint import CHECKPOINTS_DIR, list_checkpoints
from argonne_kit.train.export import trim_padded_vocab
from argonne_kit.train.fp8 import convert_to_fp8

pytest.importorskip("torchao")
from torchao.float8.float8_linear import Float8Linear

QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.toml"
CPU = torch.device("cpu")
E4M3_MAX = torch.finfo(torch.float8_e4m3fn).max


def tiny(intermediate: int = 128, vocab: int = 958, pad: int = 128):
    torch.manual_seed(0)
    section = Argonne2ModelConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=intermediate,
        max_position_embeddings=64,
        pad_vocab_to_multiple_of=pad,
    )
    return build_model(section, vocab_size=vocab)


def test_block_linears_and_the_tied_head_are_converted_and_logged():
    model = tiny()
    lines = []
    names = convert_to_fp8(model, "emulate", CPU, log=lines.append)
    expected = [
        f"model.layers.{i}.{part}"
        for i in range(2)
        for part in (
            "attn.q_proj",
            "attn.k_proj",
            "attn.v_proj",
            "attn.o_proj",
            "mlp.gate_proj",
            "mlp.up_proj",
            "mlp.down_proj",
        )
    ] + ["lm_head"]
    assert sorted(names) == sorted(expected)
    assert all(isinstance(model.get_submodule(n), Float8Linear) for n in expected)
    assert model.lm_head.weight is model.model.embed_tokens.weight  # the tie survives
    assert model.lm_head.weight.shape[0] == 1024  # 958 padded to a multiple of 128
    assert lines == ["fp8 (emulate, tensorwise dynamic): converted 15 of 15 linears including lm_head"]


def test_ineligible_linears_stay_in_high_precision_and_are_named():
    # an unpadded 958-row head and a 100-wide MLP are not multiples of 16
    model = tiny(intermediate=100, pad=1)
    lines = []
    names = convert_to_fp8(model, "emulate", CPU, log=lines.append)
    assert "lm_head" not in names and not any("mlp" in n for n in names)
    assert len(names) == 8  # q, k, v, o of two blocks
    assert "kept in high precision: model.layers.0.mlp.gate_proj" in lines[0] and lines[0].endswith("lm_head")
    assert type(model.lm_head) is not Float8Linear


def test_fp8_lm_head_false_keeps_the_head():
    model = tiny()
    names = convert_to_fp8(model, "emulate", CPU, lm_head=False)
    assert "lm_head" not in names and len(names) == 14


def test_off_converts_nothing():
    model = tiny()
    assert convert_to_fp8(model, "off", CPU) == []
    assert not any(isinstance(m, Float8Linear) for m in model.modules())


def _fake_fp8(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Tensorwise dynamic scaling by hand: scale = fp8 max / amax, cast, and back."""
    scale = torch.finfo(dtype).max / t.abs().max().clamp(min=1e-12)
    return (t * scale).clamp(-torch.finfo(dtype).max, torch.finfo(dtype).max).to(dtype).float() / scale


def test_emulated_numerics_equal_hand_quantised_matmuls():
    torch.manual_seed(1)
    linear = torch.nn.Sequential(torch.nn.Linear(64, 32, bias=False))
    x = torch.randn(8, 64, requires_grad=True)
    w = linear[0].weight.detach().clone()
    convert_to_fp8(linear, "emulate", CPU)
    y = linear(x)
    want = _fake_fp8(x.detach(), torch.float8_e4m3fn) @ _fake_fp8(w, torch.float8_e4m3fn).T
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)
    # not the plain matmul: the casts really happened
    assert (y - x.detach() @ w.T).abs().max() > 1e-3
    # backward: grad_input = fp8(grad_out, e5m2) @ fp8(w, e4m3)
    grad_out = torch.randn_like(y)
    y.backward(grad_out)
    want_grad = _fake_fp8(grad_out, torch.float8_e5m2) @ _fake_fp8(w, torch.float8_e4m3fn)
    torch.testing.assert_close(x.grad, want_grad, rtol=1e-5, atol=1e-5)


def test_real_fp8_is_refused_on_cpu():
    with pytest.raises(RecipeError, match=r"train.fp8 = \"on\": float8 training needs an NVIDIA GPU"):
        convert_to_fp8(tiny(), "on", CPU)


def test_run_with_real_fp8_on_cpu_is_a_one_line_error(tmp_path, capsys):
    code = main(
        [
            "run",
            str(QUICKSTART),
            f"run.dir={tmp_path / 'run'}",
            'train.fp8="on"',
            "train.max_steps=2",
            "schedule.warmup_steps=0",
            "schedule.cooldown_frac=0.5",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "argonne-kit: error:" in err and "float8 training needs an NVIDIA GPU" in err
    assert "Traceback" not in err


def test_trim_padded_vocab_keeps_the_trained_rows():
    model = tiny()
    convert_to_fp8(model, "emulate", CPU)
    clean = trim_padded_vocab(model, 958)
    assert clean.config.vocab_size == 958 and clean.model.embed_tokens.weight.shape[0] == 958
    assert clean.lm_head.weight is clean.model.embed_tokens.weight
    assert not any(isinstance(m, Float8Linear) for m in clean.modules())
    torch.testing.assert_close(clean.model.embed_tokens.weight, model.model.embed_tokens.weight[:958])
    assert trim_padded_vocab(clean, 958) is clean  # nothing to trim


def test_fp8_padded_run_exports_trimmed_and_a_later_stage_loads_it(tmp_path):
    from transformers import AutoModelForCausalLM

    import argonne_kit  # noqa: F401  (registers the Auto classes)
    from argonne_kit.model.loading import load_original_checkpoint

    run = tmp_path / "fp8"
    tiny_model = [
        "model.hidden_size=64",
        "model.num_hidden_layers=2",
        "model.num_attention_heads=2",
        "model.num_key_value_heads=1",
        "model.intermediate_size=128",
    ]
    code = main(
        [
            "run",
            str(QUICKSTART),
            f"run.dir={run}",
            *tiny_model,
            "model.pad_vocab_to_multiple_of=128",
            'train.fp8="emulate"',
            "train.max_steps=2",
            "train.seq_len=32",
            "train.micro_batch_size=2",
            "train.total_batch_tokens=64",
            "schedule.warmup_steps=0",
            "schedule.cooldown_frac=0.5",
            "sample.max_new_tokens=4",
            "checkpoint.interval_steps=2",
        ]
    )
    assert code == 0
    ((_, path),) = list_checkpoints(run / CHECKPOINTS_DIR)
    state = torch.load(path / "state.pt", weights_only=True)["model"]
    assert state["model.embed_tokens.weight"].shape[0] == 1024  # trained padded
    exported = AutoModelForCausalLM.from_pretrained(run / "final_model")
    vocab = exported.config.vocab_size
    assert exported.model.embed_tokens.weight.shape[0] == vocab == 958  # the tokenizer's length
    torch.testing.assert_close(exported.model.embed_tokens.weight, state["model.embed_tokens.weight"][:vocab])

    # a later stage (unpadded) starts from the padded checkpoint: trimmed by name …
    later = tiny(pad=1)
    load_original_checkpoint(dict(state), later)
    torch.testing.assert_close(later.model.embed_tokens.weight, state["model.embed_tokens.weight"][:958])
    torch.testing.assert_close(later.model.layers[1].mlp.down_proj.weight, state["model.layers.1.mlp.down_proj.weight"])
    # … and a missing key is an error, not a silently random tensor
    broken = {k: v for k, v in state.items() if k != "model.layers.1.attn.o_proj.weight"}
    with pytest.raises(Exception, match="model.layers.1.attn.o_proj.weight"):
        load_original_checkpoint(broken, tiny(pad=1))
