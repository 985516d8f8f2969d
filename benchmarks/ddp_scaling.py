"""Tokens/s of DDP training with 1 and 2 processes on this (CPU) machine.

Weak scaling: every process trains the same micro-batch shape, so ideal scaling doubles the
global tokens/s. Three launches use the same two cores differently: 1 process × 1 thread,
1 process × 2 threads (the fair single-process peer), 2 processes × 1 thread (DDP over gloo).
On a 2-core machine the 2-process figure is bounded by the cores, not by DDP: read it as the
overhead of gradient all-reduce + a second interpreter, not as multi-node scaling.

    python benchmarks/ddp_scaling.py [--steps 8] [--seq-len 256] [--micro-batch 4]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _dist_bench import launch, time_training

#: ~19 M parameters, the CPU benchmark shape of the other scripts.
MODEL = dict(
    vocab_size=16384,
    hidden_size=384,
    num_hidden_layers=8,
    num_attention_heads=6,
    num_key_value_heads=2,
    intermediate_size=1024,
    max_position_embeddings=1024,
    interleaved_local_attention=False,
    attn_backend="sdpa",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--seq-len", type=int, default=256, help="tokens per row (default 256)")
    parser.add_argument("--micro-batch", type=int, default=4, help="rows per process per step (default 4)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    common = [
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--seq-len",
        str(args.seq_len),
        "--micro-batch",
        str(args.micro_batch),
    ]
    if args.worker:
        from argonne_kit.model.config import ArgonneConfig

        time_training(
            ArgonneConfig(**MODEL),
            args.seq_len,
            args.micro_batch,
            args.steps,
            args.warmup,
            strategy_name="ddp",
            device="cpu",
        )
        return
    runs = {
        "1 proc × 1 thread": launch(__file__, 1, common, threads=1),
        "1 proc × 2 threads": launch(__file__, 1, common, threads=2),
        "2 procs × 1 thread (DDP)": launch(__file__, 2, common, threads=1),
    }
    same_threads = runs["1 proc × 1 thread"]["tokens_per_s"]
    same_cores = runs["1 proc × 2 threads"]["tokens_per_s"]
    print(
        f"DDP scaling, ~19M-param argonne2 model, seq {args.seq_len}, micro-batch {args.micro_batch} "
        f"per process, fp32, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}"
    )
    for name, result in runs.items():
        tps = result["tokens_per_s"]
        print(
            f"  {name:26s} {tps:9.0f} tokens/s   step {result['step_s']:.2f} s   "
            f"×{tps / same_threads:.2f} vs 1 proc × 1 thread   ×{tps / same_cores:.2f} vs 1 proc × 2 threads"
        )


if __name__ == "__main__":
    main()
