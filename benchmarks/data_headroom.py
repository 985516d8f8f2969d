"""Data-loading headroom: tokens/s the kit's data sources deliver to a training process, against
what the Argonne 3.0 production run consumed (~15.4k tokens/s per GPU); and the data wait per
optimizer step inside a short real training run.

Sources (built through the registry with the recipe's config classes, iterated like the trainer
does, ``--batch`` rows × ``--seq`` tokens per batch, wall clock, since worker processes do their
work outside this process):

- ``bin_shards``: a seeded uint32 token shard (``--shard-tokens``), packed windows, shuffled;
- ``fineweb_parquet``: the embedded quickstart corpus (FineWeb parquet schema) tokenized on the
  fly with the embedded BPE tokenizer (a real run tokenizes with its own, larger tokenizer);
- ``mixture``: 0.7 ``bin_shards`` + 0.3 ``fineweb_parquet`` over the same two inputs.

Each runs with ``num_workers`` 0 (in the training process) and ``--workers``. Headroom =
delivered tokens/s / 15,400; the target is ≥ 20× per rank.

The stall trace runs ``argonne-kit run`` with the quickstart model shape on the same token shard
(``--trace-steps`` steps, ``bin_shards`` with 0 and ``--workers`` workers) and records, per optimizer step, the time spent waiting for batches (the
trainer's next-batch call) beside the step time.

    python benchmarks/data_headroom.py [--batch 8] [--seq 1024] [--batches 40] [--workers 2]
        [--sources bin_shards,fineweb_parquet,mixture] [--trace-steps 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import host_line

CONSUMED_PER_GPU = 15_400  # tokens/s per GPU of the Argonne 3.0 production run
#: recipes/quickstart.toml's model, Qwen3-shaped (the trace measures the loader, not the architecture)
QUICKSTART_SHAPE = dict(
    vocab_size=2048,
    hidden_size=192,
    num_hidden_layers=4,
    num_attention_heads=6,
    num_key_value_heads=2,
    intermediate_size=512,
)


def source_configs(kind: str, shard_dir: Path, parquet_dir: Path, workers: int) -> dict:
    if kind == "bin_shards":
        return {"path": shard_dir.as_posix(), "shuffle": True, "num_workers": workers}
    if kind == "fineweb_parquet":
        return {"path": parquet_dir.as_posix(), "shuffle": True, "num_workers": workers}
    return {
        "sources": [
            {"kind": "bin_shards", "weight": 0.7, **source_configs("bin_shards", shard_dir, parquet_dir, workers)},
            {
                "kind": "fineweb_parquet",
                "weight": 0.3,
                **source_configs("fineweb_parquet", shard_dir, parquet_dir, workers),
            },
        ]
    }


def delivered_tokens_per_s(kind: str, config: dict, args, tokenizer) -> float:
    from argonne_kit.contracts.data import DataContext
    from argonne_kit.recipe.convert import structure
    from argonne_kit.registry import get_registry

    component = get_registry().get("data", kind)
    context = DataContext(
        dp_rank=0,
        dp_world=1,
        micro_batch_size=args.batch,
        seq_len=args.seq,
        seed=444,
        tokenizer=tokenizer,
        recipe_dir=".",
    )
    source = component.factory(structure(config, component.config_cls, "data"), context)
    batches = iter(source)
    next(batches)  # worker start-up and the first fill are a one-off cost, not the rate
    start = time.perf_counter()
    tokens = 0
    for _ in range(args.batches):
        ids = next(batches)["input_ids"]
        tokens += ids.shape[0] * (ids.shape[1] - 1)
    seconds = time.perf_counter() - start
    del batches, source
    return tokens / seconds


def stall_trace(steps: int, shard_dir: Path, workers: int) -> None:
    """Data wait per optimizer step inside ``argonne-kit run``: the quickstart model shape on the
    benchmark's token shard (``bin_shards``, ``workers`` worker processes), ``steps`` steps."""
    from trainer_vs_hf import RECIPE as TRAIN_RECIPE

    from argonne_kit.recipe.api import resolve_recipe
    from argonne_kit.train import metrics, trainer
    from argonne_kit.train.runner import run_recipe

    waits: list[float] = []
    stamps: dict[int, tuple[float, int]] = {}
    next_batch, write = trainer.Trainer._next_batch, metrics.MetricsLog.write

    def timed_next_batch(self, batches):
        start = time.perf_counter()
        try:
            return next_batch(self, batches)
        finally:
            waits.append(time.perf_counter() - start)

    def stamped(self, record):
        if "tokens_per_s" in record:
            stamps[record["step"]] = (time.perf_counter(), len(waits))
        write(self, record)

    trainer.Trainer._next_batch, metrics.MetricsLog.write = timed_next_batch, stamped
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp) / "trace.toml"
        text = TRAIN_RECIPE.format(
            **QUICKSTART_SHAPE,
            max_pos=256,
            data=shard_dir.as_posix(),
            chunk=0,
            lr=1e-3,
            b1=0.9,
            b2=0.95,
            eps=1e-8,
            weight_decay=0.1,
            grad_clip=1.0,
            seq=128,
            batch=8,
            steps=steps,
            ac="false",
            run_dir=f"{tmp}/run",
        )
        recipe.write_text(text.replace('kind = "bin_shards"\n', f'kind = "bin_shards"\nnum_workers = {workers}\n', 1))
        assert run_recipe(resolve_recipe(recipe)) == 0
    trainer.Trainer._next_batch, metrics.MetricsLog.write = next_batch, write
    rows = []
    for step in range(2, steps + 1):  # step 1 includes the first fill
        (t0, n0), (t1, n1) = stamps[step - 1], stamps[step]
        rows.append((t1 - t0, sum(waits[n0:n1])))
    step_s = [r[0] for r in rows]
    wait_s = [r[1] for r in rows]
    frac = [w / s for s, w in rows]
    print(
        f"stall trace (argonne-kit run, quickstart model shape, 8 × 128 tokens/step, {steps} steps, bin_shards, "
        f"num_workers {workers}): "
        f"step {statistics.median(step_s) * 1e3:.1f} ms median; data wait per step median "
        f"{statistics.median(wait_s) * 1e3:.2f} ms, max {max(wait_s) * 1e3:.2f} ms; wait / step median "
        f"{100 * statistics.median(frac):.2f} %, max {100 * max(frac):.2f} %"
    )
    print("  per step (ms, step / data wait): " + ", ".join(f"{s * 1e3:.0f}/{w * 1e3:.1f}" for s, w in rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="rows per batch (default 8)")
    parser.add_argument("--seq", type=int, default=1024, help="tokens per row (default 1024)")
    parser.add_argument("--batches", type=int, default=40, help="timed batches per source (default 40)")
    parser.add_argument("--workers", type=int, default=2, help="num_workers of the second measurement (default 2)")
    parser.add_argument("--sources", default="bin_shards,fineweb_parquet,mixture", help="comma-separated sources")
    parser.add_argument("--shard-tokens", type=int, default=50_000_000, help="tokens in the bin shard (default 50M)")
    parser.add_argument("--trace-steps", type=int, default=20, help="steps of the stall trace run (0 = skip)")
    args = parser.parse_args()
    kinds = [k for k in args.sources.split(",") if k]
    if set(kinds) - {"bin_shards", "fineweb_parquet", "mixture"}:
        parser.error("--sources: bin_shards, fineweb_parquet, mixture")

    import numpy as np
    import torch

    from argonne_kit.data.embedded import ensure_quickstart_assets
    from argonne_kit.data.shards import write_shard
    from argonne_kit.data.tokenizer import load_tokenizer

    torch.set_num_threads(1)
    print(host_line(1))
    assets = ensure_quickstart_assets(None)
    tokenizer, _ = load_tokenizer(None)
    print(
        f"batches of {args.batch} × {args.seq} tokens, {args.batches} timed per source after the first; wall clock; "
        f"headroom vs {CONSUMED_PER_GPU:,} tokens/s per GPU (Argonne 3.0), target >= 20x",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        shard_dir = Path(tmp) / "shards"
        shard_dir.mkdir()
        write_shard(
            shard_dir / "train_000000.bin",
            np.random.default_rng(0).integers(0, len(tokenizer), args.shard_tokens, dtype=np.uint32),
        )
        for kind in kinds:
            for workers in sorted({0, args.workers}):
                config = source_configs(kind, shard_dir, Path(assets.train_parquet_dir), workers)
                rate = delivered_tokens_per_s(kind, config, args, tokenizer)
                print(
                    f"  {kind:<16} num_workers {workers}: {rate:>12,.0f} tokens/s = {rate / CONSUMED_PER_GPU:8.1f}x "
                    f"the 3.0 run's per-GPU consumption",
                    flush=True,
                )
        if args.trace_steps:
            for workers in sorted({0, args.workers}):
                stall_trace(args.trace_steps, shard_dir, workers)


if __name__ == "__main__":
    main()
