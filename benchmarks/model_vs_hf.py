"""Forward+backward time of ArgonneForCausalLM vs transformers' Qwen3ForCausalLM.

Same ~19M-parameter shape (vocab 16384, d=384, 8 layers, 6/2 heads, head_dim 64, SwiGLU 1024),
same batch, same process, repetitions interleaved (ABBA) so drift and noise hit both models alike.
Runs CPU fp32 and CPU bf16 autocast at T=1024 and prints the median time per step and the
ratio Argonne / Qwen3 (≤ 1.0 means Argonne is as fast or faster). The Qwen3-shaped Argonne has
QK-norm only and no MLP clamp (Qwen3 has none); further rows add the original's ±65504 clamp on
the SwiGLU inputs, then all Argonne-3 extras (V-norm, sandwich norms, logit softcap 15, the clamp,
a 256-token window on odd layers) — those do more work than Qwen3 by design. On a CPU without
native bf16 GEMM, Argonne's linear layers run bf16 matmuls through fp32 SGEMM with bf16 rounding
(argonne_kit/model/linear.py); the ``stock-gemm`` row turns that off, leaving the architecture
alone against Qwen3 on PyTorch's own bf16 kernel (in fp32, and on native-bf16 hosts, it is
identical to ``qwen3-shaped``).

    python benchmarks/model_vs_hf.py [--batch 2] [--seq 1024] [--reps 5] [--threads N] [--clock wall|cpu] [--precision fp32|bf16|both]
        [--variants qwen3-shaped,stock-gemm,clamp,extras] [--control]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

import argonne_kit  # noqa: F401
from argonne_kit.model import ArgonneConfig, ArgonneForCausalLM
from argonne_kit.model.linear import stock_cpu_gemm

sys.path.insert(0, os.path.dirname(__file__))
from _common import host_line

SHAPE = dict(
    vocab_size=16384,
    hidden_size=384,
    num_hidden_layers=8,
    num_attention_heads=6,
    num_key_value_heads=2,
    intermediate_size=1024,
    max_position_embeddings=4096,
    rope_theta=1e6,
)
QWEN_LIKE = dict(
    qk_norm=True,
    v_norm=False,
    sandwich_norm=False,
    logit_softcap=0.0,
    interleaved_local_attention=False,
    swiglu_clamp=0.0,
)
ARGONNE3_EXTRAS = dict(
    qk_norm=True,
    v_norm=True,
    sandwich_norm=True,
    logit_softcap=15.0,
    interleaved_local_attention=True,
    local_attention_window=256,
)


STOCK_GEMM = "argonne (stock bf16 gemm)"  # the row timed with the CPU bf16 route off
VARIANTS = {  # --variants key → (row label, Argonne config overrides)
    "qwen3-shaped": ("argonne (qwen3-shaped)", QWEN_LIKE),
    "stock-gemm": (STOCK_GEMM, QWEN_LIKE),
    "clamp": ("argonne (+ mlp clamp)", QWEN_LIKE | {"swiglu_clamp": 65504.0}),
    "extras": ("argonne (3.0 extras)", ARGONNE3_EXTRAS),
}


def qwen3() -> Qwen3ForCausalLM:
    return Qwen3ForCausalLM(
        Qwen3Config(
            **SHAPE,
            head_dim=SHAPE["hidden_size"] // SHAPE["num_attention_heads"],
            tie_word_embeddings=True,
            attn_implementation="sdpa",
        )
    )


def build_models(variants: list[str], control: bool = False) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    models = {"qwen3": qwen3()}
    if control:  # the same model again: its "ratio" is the noise floor of this machine and run
        models["qwen3 (A/A control)"] = qwen3()
        models["qwen3 (A/A control)"].load_state_dict(models["qwen3"].state_dict())
    for key in variants:
        label, overrides = VARIANTS[key]
        models[label] = ArgonneForCausalLM(ArgonneConfig(**SHAPE, **overrides))
    return models


def step_seconds(model: torch.nn.Module, ids: torch.Tensor, precision: str, clock, stock_gemm: bool = False) -> float:
    model.zero_grad(set_to_none=True)
    start = clock()
    with stock_cpu_gemm() if stock_gemm else contextlib.nullcontext():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
    return clock() - start


def run(precision: str, models: dict, batch: int, seq: int, reps: int, clock) -> dict[str, list[float]]:
    ids = torch.randint(0, SHAPE["vocab_size"], (batch, seq), generator=torch.Generator().manual_seed(1))
    for name, model in models.items():
        model.train()
        step_seconds(model, ids, precision, clock, stock_gemm=name == STOCK_GEMM)  # warm-up
    times = {name: [] for name in models}
    order = list(models.items())
    for rep in range(reps):
        # ABBA order: a drift over the run (clock, memory, a neighbour's load) favours neither side
        for name, model in order if rep % 2 == 0 else order[::-1]:
            times[name].append(step_seconds(model, ids, precision, clock, stock_gemm=name == STOCK_GEMM))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2, help="sequences per step (default 2)")
    parser.add_argument("--seq", type=int, default=1024, help="tokens per sequence (default 1024)")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per model (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time, or this process's CPU time (robust on a shared, oversubscribed machine; use with --threads 1)",
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "both"),
        default="both",
        help="which precision(s) to time (default both)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated Argonne rows to time against qwen3 (default all: {','.join(VARIANTS)}); "
        "fewer rows make the slow bf16 run on CPUs without native bf16 affordable",
    )
    parser.add_argument(
        "--control", action="store_true", help="also time a second, identical Qwen3: its ratio shows the noise floor"
    )
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown --variants {unknown}; choose from {sorted(VARIANTS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    models = build_models(variants, args.control)
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    print(host_line())
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch} × T {args.seq}, "
        f"{args.clock} clock"
    )
    for name, count in params.items():
        print(f"  {name:<24} {count:,} params")
    for precision in ("fp32", "bf16") if args.precision == "both" else (args.precision,):
        clock = time.perf_counter if args.clock == "wall" else time.process_time
        times = run(precision, models, args.batch, args.seq, args.reps, clock)
        best = {name: min(t) for name, t in times.items()}
        median = {name: statistics.median(t) for name, t in times.items()}
        print(
            f"CPU {precision}{' autocast' if precision == 'bf16' else ''}: fwd+bwd per step, "
            f"min / median of {args.reps} (ratio vs qwen3 of min / of median / median of the "
            f"per-repetition ratios)"
        )
        for name in times:
            paired = statistics.median(t / q for t, q in zip(times[name], times["qwen3"]))
            ratio = (
                ""
                if name == "qwen3"
                else (f"  ratio {best[name] / best['qwen3']:.3f} / {median[name] / median['qwen3']:.3f} / {paired:.3f}")
            )
            print(f"  {name:<24} {best[name] * 1000:8.1f} / {median[name] * 1000:8.1f} ms{ratio}")


if __name__ == "__main__":
    main()
