"""A whole pretraining job: ``argonne-kit run`` vs ``transformers.Trainer`` on the same work.

Same Qwen3 shape (~18.9M parameters: vocab 16384, d 384, 8 layers, 6/2 heads, SwiGLU 1024, tied
embeddings), the same token batches (the HF side reads the kit's ``bin_shards`` windows, in the
same order), AdamW with the same hyper-parameters, fp32 on CPU, the same number of optimizer
steps, activation checkpointing on or off on both sides alike. The kit trains its Qwen3-shaped
``ArgonneForCausalLM`` from a generated recipe; the peer trains ``Qwen3ForCausalLM`` (sdpa).

Each job runs in its own process, so its peak RSS (``ru_maxrss``) is its own; the table also shows
the growth over the RSS just before the model is built (the interpreter and imports removed).
Tokens/s is counted over the steps after ``--warmup``, on the process CPU clock by default (one
thread: robust on a shared machine) or the wall clock. Jobs alternate in ABBA order; ``--control``
runs a second, identical Trainer job whose ratio is the noise floor.

    python benchmarks/trainer_vs_hf.py [--seq 1024] [--batch 2] [--steps 8] [--warmup 2] [--reps 2]
        [--threads 1] [--clock cpu|wall] [--loss-chunk-size 512] [--activation-checkpointing] [--control]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import abba, clock, emit, host_line, peak_rss_mib, ratio_table, rss_mib, run_worker

SHAPE = dict(
    vocab_size=16384,
    hidden_size=384,
    num_hidden_layers=8,
    num_attention_heads=6,
    num_key_value_heads=2,
    intermediate_size=1024,
)
OPTIM = dict(lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, grad_clip=1.0)

RECIPE = """
[model]
kind = "argonne2"
vocab_size = {vocab_size}
hidden_size = {hidden_size}
num_hidden_layers = {num_hidden_layers}
num_attention_heads = {num_attention_heads}
num_key_value_heads = {num_key_value_heads}
intermediate_size = {intermediate_size}
max_position_embeddings = {max_pos}
rope_theta = 1000000.0
qk_norm = true
v_norm = false
sandwich_norm = false
logit_softcap = 0.0
swiglu_clamp = 0.0
interleaved_local_attention = false
tie_word_embeddings = true

[attention]
kind = "sdpa"

[data]
kind = "bin_shards"
path = "{data}"

[objective]
kind = "clm"
loss_chunk_size = {chunk}

[optim]
lr = {lr}
betas = [{b1}, {b2}]
eps = {eps}
weight_decay = {weight_decay}
grad_clip = {grad_clip}

[schedule]
kind = "constant"
warmup_steps = 1

[train]
seq_len = {seq}
micro_batch_size = {batch}
max_steps = {steps}
precision = "fp32"
device = "cpu"
activation_checkpointing = {ac}
log_every = 1

[run]
dir = "{run_dir}"

[sample]
enabled = false

[logging]
progress = "plain"
"""


def write_tokens(directory: Path, tokens: int, vocab: int) -> Path:
    """A seeded random uint32 token shard, identical on both sides. Ids stay below ``vocab``, the
    run's tokenizer's size (the kit refuses ids its tokenizer cannot produce); the models keep
    their 16,384-row vocabulary, so the LM head and the loss cost the same."""
    import numpy as np

    from argonne_kit.data.shards import write_shard

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write_shard(directory / "train_000000.bin", rng.integers(0, vocab, tokens, dtype=np.uint32))
    return directory


def recipe_text(args, data: Path, run_dir: Path) -> str:
    return RECIPE.format(
        **SHAPE,
        max_pos=max(args.seq, 1024),
        data=data.as_posix(),
        chunk=args.loss_chunk_size,
        lr=OPTIM["lr"],
        b1=OPTIM["betas"][0],
        b2=OPTIM["betas"][1],
        eps=OPTIM["eps"],
        weight_decay=OPTIM["weight_decay"],
        grad_clip=OPTIM["grad_clip"],
        seq=args.seq,
        batch=args.batch,
        steps=args.warmup + args.steps,
        ac=str(args.activation_checkpointing).lower(),
        run_dir=run_dir.as_posix(),
    )


def kit_job(args, workdir: Path) -> dict:
    """``argonne-kit run`` on the generated recipe; step times from its per-step metrics records."""
    from argonne_kit.recipe.diff import resolve_any
    from argonne_kit.train import metrics
    from argonne_kit.train.runner import run_recipe

    tick = clock(args.clock)
    stamps: dict[int, float] = {}
    write = metrics.MetricsLog.write

    def stamped(self, record):  # the time each optimizer step's record is written
        if "tokens_per_s" in record:
            stamps[record["step"]] = tick()
        write(self, record)

    metrics.MetricsLog.write = stamped
    run_dir = workdir / f"kit_run_{time.monotonic_ns()}"  # a fresh run each job (never a resume)
    recipe = workdir / f"{run_dir.name}.toml"
    recipe.write_text(recipe_text(args, workdir / "data", run_dir))
    base = rss_mib()
    code = run_recipe(resolve_any(recipe))
    if code != 0:
        raise SystemExit(f"argonne-kit run exited {code}")
    return {"seconds": stamps[args.warmup + args.steps] - stamps[args.warmup], "base_rss": base}


def hf_job(args, workdir: Path) -> dict:
    """``transformers.Trainer`` on ``Qwen3ForCausalLM`` with the kit's batches in the kit's order."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM, Trainer, TrainerCallback, TrainingArguments

    from argonne_kit.contracts.data import DataContext
    from argonne_kit.registry import get_registry

    component = get_registry().get("data", "bin_shards")
    config = component.config_cls(path=(workdir / "data").as_posix())
    context = DataContext(
        dp_rank=0,
        dp_world=1,
        micro_batch_size=args.batch,
        seq_len=args.seq,
        seed=444,
        tokenizer=None,
        recipe_dir=str(workdir),
    )
    batches = iter(component.factory(config, context))
    rows = [row[:-1] for _ in range(args.warmup + args.steps) for row in next(batches)["input_ids"]]
    dataset = [{"input_ids": row, "labels": row} for row in rows]

    tick = clock(args.clock)
    stamps: dict[int, float] = {}

    class Stamp(TrainerCallback):
        def on_step_end(self, _args, state, _control, **_kwargs):
            stamps[state.global_step] = tick()

    training_args = TrainingArguments(
        output_dir=str(workdir / "hf_run"),
        per_device_train_batch_size=args.batch,
        max_steps=args.warmup + args.steps,
        learning_rate=OPTIM["lr"],
        adam_beta1=OPTIM["betas"][0],
        adam_beta2=OPTIM["betas"][1],
        adam_epsilon=OPTIM["eps"],
        weight_decay=OPTIM["weight_decay"],
        max_grad_norm=OPTIM["grad_clip"],
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=1,
        optim="adamw_torch",
        use_cpu=True,
        logging_steps=10**6,
        save_strategy="no",
        report_to=[],
        dataloader_num_workers=0,
        disable_tqdm=True,
        gradient_checkpointing=args.activation_checkpointing,
        seed=444,
    )
    base = rss_mib()
    torch.manual_seed(444)
    model = Qwen3ForCausalLM(
        Qwen3Config(
            **SHAPE,
            head_dim=SHAPE["hidden_size"] // SHAPE["num_attention_heads"],
            max_position_embeddings=max(args.seq, 1024),
            rope_theta=1e6,
            tie_word_embeddings=True,
            attn_implementation="sdpa",
        )
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        data_collator=lambda items: {k: torch.stack([i[k] for i in items]) for k in items[0]},
        callbacks=[Stamp()],
    )
    trainer.train()
    return {"seconds": stamps[args.warmup + args.steps] - stamps[args.warmup], "base_rss": base}


JOBS = {"argonne-kit run": kit_job, "transformers Trainer": hf_job, "Trainer (A/A control)": hf_job}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seq", type=int, default=1024, help="tokens per row (default 1024)")
    parser.add_argument("--batch", type=int, default=2, help="rows per optimizer step (default 2)")
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--reps", type=int, default=2, help="jobs per side, ABBA order (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job (default 1)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time or wall time")
    parser.add_argument(
        "--loss-chunk-size",
        type=int,
        default=512,
        help="the kit's objective.loss_chunk_size (0 = full logits; default 512)",
    )
    parser.add_argument(
        "--activation-checkpointing",
        action="store_true",
        help="recompute activations on both sides (kit: train.activation_checkpointing, "
        "Trainer: gradient_checkpointing)",
    )
    parser.add_argument("--control", action="store_true", help="also run a second, identical Trainer job")


def worker_args(args) -> list[str]:
    out = [
        "--seq",
        str(args.seq),
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--clock",
        args.clock,
        "--loss-chunk-size",
        str(args.loss_chunk_size),
    ]
    return out + ["--activation-checkpointing"] * args.activation_checkpointing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--job", choices=list(JOBS), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        start = time.perf_counter()
        result = JOBS[args.job](args, Path(args.workdir))
        emit(result | {"peak_rss": peak_rss_mib(), "wall": time.perf_counter() - start})
        return

    names = ["argonne-kit run", "transformers Trainer"] + ["Trainer (A/A control)"] * args.control
    tokens = args.steps * args.batch * args.seq
    rates: dict[str, list[float]] = {n: [] for n in names}
    peaks: dict[str, list[float]] = {n: [] for n in names}
    growth: dict[str, list[float]] = {n: [] for n in names}
    print(host_line(args.threads))
    print(
        f"Qwen3 shape ~18.9M, T={args.seq}, batch {args.batch}, {args.steps} timed + {args.warmup} warm-up "
        f"steps, fp32, AdamW, {args.clock} clock, kit loss_chunk_size={args.loss_chunk_size}, "
        f"activation checkpointing {'on' if args.activation_checkpointing else 'off'} on both sides",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        # the data plugin needs every window of every step (plus one token of overlap)
        from argonne_kit.data.tokenizer import load_tokenizer

        tokenizer_size = len(load_tokenizer(None)[0])  # the embedded tokenizer the kit's recipe uses
        write_tokens(workdir / "data", (args.warmup + args.steps + 1) * args.batch * (args.seq + 1) + 1, tokenizer_size)
        for rep, name in abba(names, args.reps):
            result = run_worker(__file__, worker_args(args) + ["--job", name, "--workdir", tmp], args.threads)
            rates[name].append(tokens / result["seconds"])
            peaks[name].append(result["peak_rss"])
            growth[name].append(result["peak_rss"] - result["base_rss"])
            print(
                f"  rep {rep} {name:<24} {rates[name][-1]:8.1f} tokens/s, peak RSS {peaks[name][-1]:,.0f} MiB "
                f"(+{growth[name][-1]:,.0f} over the pre-model RSS), job wall {result['wall']:.0f} s",
                flush=True,
            )
    reference = "transformers Trainer"
    print(
        f"tokens/s (best / median; ratio vs {reference}: of best / of median / median of paired ratios; target >= 1.0)"
    )
    print("\n".join(ratio_table(rates, reference, "tokens/s", higher_is_better=True)))
    print("peak RSS, MiB (min / median; ratio ...; target <= 0.8)")
    print("\n".join(ratio_table(peaks, reference, "MiB", "{:,.0f}")))
    print("peak RSS growth over the pre-model RSS, MiB (min / median; ratio ...)")
    print("\n".join(ratio_table(growth, reference, "MiB", "{:,.0f}")))


if __name__ == "__main__":
    main()
