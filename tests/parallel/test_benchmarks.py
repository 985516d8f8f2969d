"""The GPU MFU benchmark's FLOP count and its clean exit on a machine without CUDA."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import gpu_mfu  # noqa: E402


def _matmul_params(config) -> int:
    """Independent count: every 2-D weight of a meta-device model except the embedding lookup,
    plus the LM head's matmul (named_parameters lists a tied head only once)."""
    from argonne_kit.model import ArgonneForCausalLM

    with torch.device("meta"):
        model = ArgonneForCausalLM(config)
    blocks = sum(
        p.numel() for name, p in model.named_parameters() if p.dim() == 2 and not name.startswith("model.embed_tokens")
    )
    return blocks + config.hidden_size * config.vocab_size


def test_flops_per_token_of_the_3_0_shape():
    config = gpu_mfu.model_config(1024)
    assert (config.hidden_size, config.num_hidden_layers, config.head_dim) == (3072, 24, 256)
    attention = 12 * 24 * 12 * 256 * 1024  # full causal on every layer (3.0 trained without window)
    assert gpu_mfu.flops_per_token(config, 1024) == 6 * _matmul_params(config) + attention


def test_windowed_layers_count_their_window():
    from argonne_kit.model import ArgonneConfig

    config = ArgonneConfig(
        vocab_size=1000,
        hidden_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=256,
        interleaved_local_attention=True,
        local_attention_window=64,
    )
    t = 512
    attention = 12 * 4 * 32 * (t + 64 + t + 64)  # layers 1 and 3 see 64 keys
    assert gpu_mfu.flops_per_token(config, t) == 6 * _matmul_params(config) + attention


@pytest.mark.parametrize(
    "name,peak",
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("Tesla T4", None),
    ],
)
def test_peak_table(name, peak):
    assert gpu_mfu.peak_tflops(name) == peak


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_gpu_benchmark_exits_cleanly_without_cuda():
    done = subprocess.run([sys.executable, str(BENCH / "gpu_mfu.py")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert "no CUDA device" in done.stdout


# -- the side-by-side scripts: their method and their CPU paths, on tiny shapes ---------------

import _common  # noqa: E402
import checkpoint_io  # noqa: E402
import chunked_ce  # noqa: E402


def test_abba_order_alternates_direction():
    assert list(_common.abba(["a", "b", "c"], 3)) == [
        (0, "a"),
        (0, "b"),
        (0, "c"),
        (1, "c"),
        (1, "b"),
        (1, "a"),
        (2, "a"),
        (2, "b"),
        (2, "c"),
    ]


def test_ratio_table_ratios_of_best_median_and_pairs():
    rows = _common.ratio_table({"peer": [2.0, 4.0, 3.0], "ours": [1.0, 4.0, 6.0]}, "peer", "s", "{:.1f}")
    assert rows[0].split()[:4] == ["peer", "2.0", "/", "3.0"]
    # min 1/2, median 4/3, paired median of (0.5, 1.0, 2.0)
    assert rows[1].endswith("ratio 0.500 / 1.333 / 1.000")
    rates = _common.ratio_table({"peer": [2.0, 4.0], "ours": [3.0, 8.0]}, "peer", "x", higher_is_better=True)
    assert rates[1].endswith("ratio 2.000 / 1.833 / 1.750")  # best = max for rates; pairs 1.5, 2.0


def test_host_line_names_threads_and_torch():
    line = _common.host_line(1)
    assert "1 torch threads" in line and f"torch {torch.__version__}" in line


@pytest.mark.parametrize("row", ["kit chunked", "kit generic chunked", "torchtune-style"])
def test_chunked_rows_match_the_full_logits_loss_and_gradients(row):
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(300, 16, generator=gen).requires_grad_()
    hidden = torch.randn(40, 16, generator=gen).requires_grad_()
    targets = torch.randint(0, 300, (40,), generator=gen)
    targets[::7] = -100  # ignored rows
    full = chunked_ce.loss_step("full logits", hidden, weight, targets, chunk=8)
    grads = weight.grad.clone(), hidden.grad.clone()
    weight.grad = hidden.grad = None
    chunked = chunked_ce.loss_step(row, hidden, weight, targets, chunk=8)
    torch.testing.assert_close(chunked, full)
    torch.testing.assert_close(weight.grad, grads[0])
    torch.testing.assert_close(hidden.grad, grads[1])


def test_checkpoint_io_rows_save_load_and_raw_io(tmp_path):
    bench = checkpoint_io.Bench(2e6, tmp_path)
    params = bench.params
    assert 1e6 < params < 4e6
    assert bench.kit_save() > 0 and bench.saved.name == "step_00000001"
    assert bench.nbytes >= 12 * params  # fp32 weights + two AdamW moments
    before = [p.detach().clone() for p in bench.model.parameters()]
    for p in bench.model.parameters():
        p.data.zero_()
    assert bench.kit_load() > 0
    assert all(torch.equal(a, b) for a, b in zip(before, bench.model.parameters()))  # the load really loaded
    assert bench.raw_write() > 0 and bench.raw.stat().st_size == bench.nbytes
    assert bench.raw_read() > 0


def test_trainer_vs_hf_recipe_resolves_to_the_qwen3_shape(tmp_path):
    import argparse

    import trainer_vs_hf

    parser = argparse.ArgumentParser()
    trainer_vs_hf.add_arguments(parser)
    args = parser.parse_args(["--seq", "64", "--steps", "2", "--warmup", "1"])
    from argonne_kit.model import build_config
    from argonne_kit.recipe.diff import resolve_any

    recipe = tmp_path / "kit.toml"
    recipe.write_text(trainer_vs_hf.recipe_text(args, tmp_path / "data", tmp_path / "run"))
    resolved = resolve_any(recipe)
    config = build_config(resolved.recipe.model)
    shape = trainer_vs_hf.SHAPE
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (
        shape["vocab_size"],
        shape["hidden_size"],
        shape["num_hidden_layers"],
    )
    assert (
        not config.v_norm
        and not config.sandwich_norm
        and not config.swiglu_clamp
        and not config.final_logit_softcapping
    )
    assert resolved.recipe.train.max_steps == 3 and resolved.recipe.objective.config.loss_chunk_size == 512


def test_data_headroom_counts_delivered_tokens(tmp_path):
    import argparse

    import data_headroom
    import numpy as np

    from argonne_kit.data.shards import write_shard

    write_shard(tmp_path / "train_000000.bin", np.arange(20_000, dtype=np.uint32) % 1000)
    args = argparse.Namespace(batch=2, seq=32, batches=5)
    config = data_headroom.source_configs("bin_shards", tmp_path, tmp_path, workers=0)
    assert data_headroom.delivered_tokens_per_s("bin_shards", config, args, tokenizer=None) > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU smoke mode")
def test_gpu_suite_cpu_smoke_runs_every_section():
    done = subprocess.run(
        [sys.executable, str(BENCH / "gpu_suite.py")],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for section in (
        "1. attention backends",
        "2. FP8",
        "3. chunked cross-entropy",
        "4. activation checkpointing",
        "5. largest micro-batch",
    ):
        assert section in out
    figures = [line for line in out.splitlines() if "tokens/s" in line or "skipped" in line or "ratio" in line]
    assert len(figures) >= 6 and all("CPU smoke, not a GPU figure" in line for line in figures)
    assert "sdpa " in out and "flash2" in out and "FP8 skipped" in out
