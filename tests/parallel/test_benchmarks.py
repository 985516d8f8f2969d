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
