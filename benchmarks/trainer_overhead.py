"""Step time of ``argonne-kit run`` versus a bare PyTorch loop — same model, data, optimizer and
precision, measured in one process, alternating the two to share whatever the machine is doing.

    python benchmarks/trainer_overhead.py [--steps 40] [--warmup 5] [--repeats 3] [--precision fp32]

The bare loop is what one would write by hand: next batch → forward → cross-entropy / accum →
backward (× accum) → clip → AdamW step → zero_grad, with the LR set per step and one
``loss.item()`` per step. The kit's time per step is the wall time between its metrics records
after warmup (it includes the per-step reductions, stop checks, progress and metrics writing,
not the final checkpoint/export). Prints the min and median of each and the overhead ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

RECIPE = """
[model]
kind = "argonne2"
hidden_size = {hidden}
num_hidden_layers = {layers}
num_attention_heads = 6
num_key_value_heads = 2
intermediate_size = {ffn}
max_position_embeddings = 256
interleaved_local_attention = false

[data]
kind = "bin_shards"

[optim]
lr = 1e-3
weight_decay = 0.1
grad_clip = 1.0

[schedule]
kind = "constant"
warmup_steps = 2

[train]
seq_len = {seq_len}
micro_batch_size = {batch}
total_batch_tokens = {total}
max_steps = {steps}
precision = "{precision}"
device = "cpu"
log_every = {log_every}

[run]
dir = "{run_dir}"

[sample]
enabled = false

[logging]
progress = "plain"
"""


def kit_step_time(recipe_path: Path, run_dir: Path, warmup: int, steps: int, tokens_per_step: int) -> float:
    from argonne_kit.recipe.diff import resolve_any
    from argonne_kit.train.runner import run_recipe

    assert run_recipe(resolve_any(recipe_path)) == 0
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last = next(r for r in records if r.get("step") == steps and "tokens_per_s" in r)
    return tokens_per_step / last["tokens_per_s"]


def bare_step_time(resolved, warmup: int, steps: int) -> float:
    from argonne_kit.contracts.data import DataContext
    from argonne_kit.data.tokenizer import load_tokenizer
    from argonne_kit.model import build_model
    from argonne_kit.registry import get_registry

    recipe = resolved.recipe
    train = recipe.train
    tokenizer, _ = load_tokenizer(None)
    torch.manual_seed(train.seed)
    model = build_model(recipe.model, len(tokenizer))
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=recipe.optim.lr,
        betas=tuple(recipe.optim.betas),
        eps=recipe.optim.eps,
        weight_decay=recipe.optim.weight_decay,
    )
    context = DataContext(
        dp_rank=0,
        dp_world=1,
        micro_batch_size=train.micro_batch_size,
        seq_len=train.seq_len,
        seed=train.seed,
        tokenizer=tokenizer,
        recipe_dir=str(resolved.base_dir),
    )
    data = iter(get_registry().get("data", recipe.data.kind).factory(recipe.data.config, context))
    accum = resolved.derived["train"]["grad_accum_steps"]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=train.precision == "bf16")
    start = None
    for step in range(steps):
        if step == warmup:
            start = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = recipe.optim.lr * min(1.0, (step + 1) / 2)
        total = torch.zeros(())
        for _ in range(accum):
            ids = next(data)["input_ids"]
            with autocast:
                logits = model(input_ids=ids[:, :-1]).logits
            loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1)) / accum
            loss.backward()
            total += loss.detach()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.optim.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        total.item()
    return (time.perf_counter() - start) / (steps - warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="steps excluded from the timing")
    parser.add_argument("--repeats", type=int, default=3, help="alternating measurements of each")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--hidden", type=int, default=192)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--accum", type=int, default=2)
    args = parser.parse_args()

    from argonne_kit.recipe.diff import resolve_any

    tokens_per_step = args.batch * args.seq_len * args.accum
    kit, bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            run_dir = Path(tmp) / f"run{repeat}"
            recipe_path = Path(tmp) / f"bench{repeat}.toml"
            recipe_path.write_text(
                RECIPE.format(
                    hidden=args.hidden,
                    layers=args.layers,
                    ffn=args.hidden * 8 // 3 // 64 * 64,
                    seq_len=args.seq_len,
                    batch=args.batch,
                    total=tokens_per_step,
                    steps=args.steps,
                    precision=args.precision,
                    log_every=args.steps - args.warmup,
                    run_dir=run_dir.as_posix(),
                )
            )
            resolved = resolve_any(recipe_path)
            bare.append(bare_step_time(resolved, args.warmup, args.steps))
            kit.append(kit_step_time(recipe_path, run_dir, args.warmup, args.steps, tokens_per_step))
            print(
                f"repeat {repeat}: bare {bare[-1] * 1e3:.1f} ms/step, argonne-kit run {kit[-1] * 1e3:.1f} ms/step",
                flush=True,
            )
    print(
        f"\nmodel d={args.hidden} L={args.layers}, {tokens_per_step} tokens/step ({args.batch}×{args.seq_len}×"
        f"{args.accum}), {args.precision}, {torch.get_num_threads()} threads"
    )
    # min = the least disturbed measurement (the noise of a shared machine only ever adds time)
    for name, reduce in (("min", min), ("median", statistics.median)):
        bare_ms, kit_ms = reduce(bare) * 1e3, reduce(kit) * 1e3
        print(
            f"{name} step time: bare loop {bare_ms:.1f} ms, argonne-kit run {kit_ms:.1f} ms "
            f"-> overhead {100 * (kit_ms / bare_ms - 1):+.1f} %"
        )


if __name__ == "__main__":
    main()
