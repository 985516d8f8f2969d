"""Tokens/s and MFU of Argonne 3.0-shaped training on 1–8 GPUs (DDP, bf16 autocast).

Model FLOPs per trained token (forward + backward = 3 × forward), counted the way torchtitan and
Megatron count them:
- 6 × N_matmul, where N_matmul holds every matmul weight *including the LM head* and *excluding the
  embedding lookup* (tied or not, the head's matmul is real work);
- attention scores and values: 12 × Σ_layers (num_heads × head_dim) × T_eff, with T_eff the
  sequence length for full causal layers (the "full" convention of PaLM/Megatron/torchtitan) and
  the window for windowed layers (min(window, seq_len));
- model FLOPs before any TP split, per GPU: tokens/s/GPU × FLOPs/token / peak.
Peak dense bf16 TFLOP/s: A100 312, H100 SXM 989, H100 NVL 835, H100 PCIe 756, H200 989.

    python benchmarks/gpu_mfu.py [--gpus 1,2,4,8] [--micro-batch 8] [--seq-len 1024] [--compile]

Runs only where CUDA is available; elsewhere it says so and exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _dist_bench import launch, time_training

RECIPE = os.path.join(os.path.dirname(__file__), "..", "recipes", "bases", "argonne3_0.toml")
#: (substring of torch.cuda.get_device_name, peak dense bf16 TFLOP/s), most specific first.
PEAK_TFLOPS = (("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("A100", 312.0))


def peak_tflops(device_name: str) -> float | None:
    for key, value in PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


def flops_per_token(config, seq_len: int) -> float:
    """Training FLOPs per token of an ``ArgonneConfig`` at ``seq_len`` (see the module doc)."""
    d, heads, kv = config.hidden_size, config.num_attention_heads, config.num_key_value_heads
    hd = config.head_dim
    attn_weights = d * heads * hd * 2 + d * kv * hd * 2  # q, o + k, v
    mlp_weights = 3 * d * config.intermediate_size  # gate, up, down
    n_matmul = config.num_hidden_layers * (attn_weights + mlp_weights) + d * config.vocab_size
    attention = 0
    for window in config.layer_windows():
        t_eff = min(window, seq_len) if window else seq_len
        attention += 12 * heads * hd * t_eff
    return 6 * n_matmul + attention


def model_config(seq_len: int):
    from argonne_kit.model import build_config
    from argonne_kit.recipe.api import resolve_recipe

    resolved = resolve_recipe(RECIPE, [f"model.max_position_embeddings={max(seq_len, 1024)}"])
    return build_config(resolved.recipe.model, attn_backend="auto")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--gpus", default="1,2,4,8", help="GPU counts to measure (default 1,2,4,8; capped at the GPUs present)"
    )
    parser.add_argument("--micro-batch", type=int, default=8, help="rows per GPU per step (default 8)")
    parser.add_argument("--seq-len", type=int, default=1024, help="tokens per row (default 1024, the 3.0 context)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--strategy", default="ddp", help="parallel strategy (default ddp, as 3.0 trained)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the blocks")
    parser.add_argument("--activation-checkpointing", action="store_true", help="recompute activations")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        time_training(
            model_config(args.seq_len),
            args.seq_len,
            args.micro_batch,
            args.steps,
            args.warmup,
            strategy_name=args.strategy,
            device="cuda",
            precision="bf16",
            compile=args.compile,
            activation_checkpointing=args.activation_checkpointing,
        )
        return 0
    if not torch.cuda.is_available():
        print(
            "gpu_mfu: no CUDA device here; run this benchmark on a GPU machine "
            "(it measures the Argonne 3.0 shape on 1–8 GPUs)."
        )
        return 0
    available = torch.cuda.device_count()
    counts = sorted({min(int(n), available) for n in args.gpus.split(",")})
    per_token = flops_per_token(model_config(args.seq_len), args.seq_len)
    worker_args = [
        "--micro-batch",
        str(args.micro_batch),
        "--seq-len",
        str(args.seq_len),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--strategy",
        args.strategy,
    ]
    worker_args += ["--compile"] * args.compile + ["--activation-checkpointing"] * args.activation_checkpointing
    print(
        f"Argonne 3.0 shape, {args.strategy}, bf16 autocast, seq {args.seq_len}, micro-batch "
        f"{args.micro_batch}/GPU, {per_token / 1e9:.2f} GFLOP/token"
    )
    base = None
    for n in counts:
        result = launch(__file__, n, worker_args)
        per_gpu = result["tokens_per_s"] / n
        peak = peak_tflops(result["device_name"])
        mfu = f"{100 * per_gpu * per_token / (peak * 1e12):.1f}%" if peak else "n/a (unknown peak)"
        base = base or per_gpu
        print(
            f"  {n} × {result['device_name']}: {result['tokens_per_s']:,.0f} tokens/s "
            f"({per_gpu:,.0f}/GPU, scaling efficiency {per_gpu / base:.2f}), MFU {mfu}, "
            f"peak memory {result['max_memory_gib']:.1f} GiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
