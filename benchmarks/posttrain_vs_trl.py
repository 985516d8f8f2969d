"""Post-training jobs: ``argonne-kit run`` SFT and DPO vs TRL's ``SFTTrainer`` and ``DPOTrainer``.

The same data on both sides: seeded synthetic conversations (SFT: one user turn, one assistant
turn, loss on the answer only; DPO: a user prompt with a chosen and a rejected answer) rendered
by the kit's embedded tokenizer and its chat template, every row padded to ``--seq`` on both sides
(the kit: ``pad_to = "seq_len"``; TRL: ``pad_to_multiple_of = seq``), so a step does the same
number of tokens whatever the row order. The same Qwen3 shape (~18.9M, vocab 16384, tied), the
same AdamW hyper-parameters, fp32, one optimizer step per micro-batch. The kit trains its
Qwen3-shaped ``ArgonneForCausalLM`` initialised from a saved model (``[init] from``; the DPO
reference is that same model); TRL trains ``transformers``' ``Qwen3ForCausalLM`` of the same shape
(the two implementations are compared alone by ``model_vs_hf.py``).

DPO rows: the kit with a live reference (``precompute_reference = false``) and with the reference
precomputed before the loop; TRL with its live reference and with ``precompute_ref_log_probs``.
Tokens/s counts the padded rows of the timed steps (each pair = 2 rows) on the process CPU clock
by default; the precomputation happens before the timed steps on both sides (its cost shows in the
job wall time). Peak RSS per job (its own process), and the growth over the RSS just before the
model is built. Jobs alternate in ABBA order; ``--control`` repeats the TRL job as the A/A noise floor.

    python benchmarks/posttrain_vs_trl.py [--task sft,dpo] [--seq 512] [--batch 4] [--pairs 2] [--steps 4]
        [--warmup 1] [--reps 2] [--threads 1] [--clock cpu|wall] [--control]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import abba, clock, emit, host_line, peak_rss_mib, ratio_table, rss_mib, run_worker
from trainer_vs_hf import OPTIM, SHAPE

MODEL_SECTION = """
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
"""

RECIPE = """
[attention]
kind = "sdpa"

[data]
kind = "{data_kind}"
path = "{data}"
pad_to = "seq_len"

[objective]
{objective}

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
log_every = 1

[init]
from = "{init}"
carry = "weights"

[run]
dir = "{run_dir}"

[sample]
enabled = false

[logging]
progress = "plain"
"""

#: (job name, task, side, options)
JOBS = {
    "kit sft": ("sft", "kit", {}),
    "TRL SFTTrainer": ("sft", "trl", {}),
    "SFTTrainer (A/A control)": ("sft", "trl", {}),
    "kit dpo, live reference": ("dpo", "kit", {"precompute": False}),
    "kit dpo, precomputed reference": ("dpo", "kit", {"precompute": True}),
    "TRL DPOTrainer, live reference": ("dpo", "trl", {"precompute": False}),
    "TRL DPOTrainer, precomputed reference": ("dpo", "trl", {"precompute": True}),
    "DPOTrainer live (A/A control)": ("dpo", "trl", {"precompute": False}),
}
REFERENCE = {"sft": "TRL SFTTrainer", "dpo": "TRL DPOTrainer, live reference"}
BETA = 0.1


def tokenizer_dir() -> Path:
    from argonne_kit.data.embedded import ensure_quickstart_assets

    return Path(ensure_quickstart_assets(None).tokenizer_dir)


def make_data(workdir: Path, rows: int, seq: int) -> None:
    """Seeded conversations of random single-token words, short enough that the rendered prompt +
    answer stays under ``seq`` tokens (no truncation, nothing dropped on either side)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir())
    words = [
        w
        for w in (tokenizer.decode([i]) for i in range(len(tokenizer)))
        if w.startswith(" ") and w[1:].isalpha() and len(w) > 3
    ]
    rng = random.Random(0)

    def text(n: int) -> str:
        return "".join(rng.choice(words) for _ in range(n)).strip()

    budget = seq // 2 - 16  # prompt + the longer answer + template tokens stay below seq
    sft, dpo = [], []
    for _ in range(rows):
        prompt = [{"role": "user", "content": text(budget // 3)}]
        sft.append({"prompt": prompt, "completion": [{"role": "assistant", "content": text(budget)}]})
        dpo.append(
            {
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": text(budget)}],
                "rejected": [{"role": "assistant", "content": text(budget)}],
            }
        )
    (workdir / "sft.jsonl").write_text(
        "".join(json.dumps({"messages": r["prompt"] + r["completion"]}) + "\n" for r in sft)
    )
    (workdir / "sft_trl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))
    (workdir / "dpo.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dpo))
    longest = max(
        len(tokenizer.apply_chat_template(r["prompt"] + r[k], tokenize=True))
        for r in dpo
        for k in ("chosen", "rejected")
    )
    if longest > seq:
        raise SystemExit(f"synthetic rows reach {longest} tokens > --seq {seq}")


def save_init_model(workdir: Path, seq: int) -> None:
    """The kit's starting point: a seeded Qwen3-shaped Argonne model in Hugging Face layout."""
    import torch

    from argonne_kit.model import ArgonneConfig, ArgonneForCausalLM

    torch.manual_seed(444)
    model = ArgonneForCausalLM(
        ArgonneConfig(
            **SHAPE,
            max_position_embeddings=max(seq, 1024),
            rope_theta=1e6,
            qk_norm=True,
            v_norm=False,
            sandwich_norm=False,
            logit_softcap=0.0,
            interleaved_local_attention=False,
            swiglu_clamp=0.0,
            tie_word_embeddings=True,
        )
    )
    model.save_pretrained(workdir / "init_model")


def steps_of(args, task: str) -> int:
    return args.warmup + args.steps


def rows_per_step(args, task: str) -> int:
    return args.batch if task == "sft" else 2 * args.pairs


def kit_job(args, workdir: Path, task: str, options: dict) -> dict:
    from argonne_kit.recipe.diff import resolve_any
    from argonne_kit.train import metrics
    from argonne_kit.train.runner import run_recipe

    tick = clock(args.clock)
    stamps: dict[int, float] = {}
    write = metrics.MetricsLog.write

    def stamped(self, record):
        if "tokens_per_s" in record:
            stamps[record["step"]] = tick()
        write(self, record)

    metrics.MetricsLog.write = stamped
    if task == "sft":
        data_kind, data, objective = "ultrachat", workdir / "sft.jsonl", 'kind = "sft"'
        batch = args.batch
    else:
        data_kind, data = "preference", workdir / "dpo.jsonl"
        objective = (
            f'kind = "dpo"\nbeta = {BETA}\nloss_type = "sigmoid"\nscore = "sum"\n'
            f"precompute_reference = {str(options['precompute']).lower()}"
        )
        batch = args.pairs
    run_dir = workdir / f"kit_{task}_{int(options.get('precompute', 0))}_{time.monotonic_ns()}"
    recipe = workdir / f"{run_dir.name}.toml"
    recipe.write_text(
        MODEL_SECTION.format(**SHAPE, max_pos=max(args.seq, 1024))
        + RECIPE.format(
            data_kind=data_kind,
            data=data.as_posix(),
            objective=objective,
            lr=OPTIM["lr"],
            b1=OPTIM["betas"][0],
            b2=OPTIM["betas"][1],
            eps=OPTIM["eps"],
            weight_decay=OPTIM["weight_decay"],
            grad_clip=OPTIM["grad_clip"],
            seq=args.seq,
            batch=batch,
            steps=steps_of(args, task),
            init=(workdir / "init_model").as_posix(),
            run_dir=run_dir.as_posix(),
        )
    )
    base = rss_mib()
    code = run_recipe(resolve_any(recipe))
    if code != 0:
        raise SystemExit(f"argonne-kit run exited {code}")
    last = steps_of(args, task)
    return {"seconds": stamps[last] - stamps[args.warmup], "base_rss": base}


def trl_job(args, workdir: Path, task: str, options: dict) -> dict:
    import torch
    from datasets import load_dataset
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM, TrainerCallback

    tick = clock(args.clock)
    stamps: dict[int, float] = {}

    class Stamp(TrainerCallback):
        def on_step_end(self, _args, state, _control, **_kwargs):
            stamps[state.global_step] = tick()

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir())
    common = dict(
        output_dir=str(workdir / f"trl_{task}"),
        max_steps=steps_of(args, task),
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
        seed=444,
        max_length=args.seq,
        pad_to_multiple_of=args.seq,
        dataset_num_proc=None,
    )

    def model() -> Qwen3ForCausalLM:
        torch.manual_seed(444)
        return Qwen3ForCausalLM(
            Qwen3Config(
                **SHAPE,
                head_dim=SHAPE["hidden_size"] // SHAPE["num_attention_heads"],
                max_position_embeddings=max(args.seq, 1024),
                rope_theta=1e6,
                tie_word_embeddings=True,
                attn_implementation="sdpa",
                pad_token_id=tokenizer.pad_token_id,
            )
        )

    if task == "sft":
        from trl import SFTConfig, SFTTrainer

        dataset = load_dataset("json", data_files=str(workdir / "sft_trl.jsonl"), split="train")
        config = SFTConfig(**common, per_device_train_batch_size=args.batch, completion_only_loss=True)
        base = rss_mib()
        trainer = SFTTrainer(
            model=model(), args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=[Stamp()]
        )
    else:
        from trl import DPOConfig, DPOTrainer

        dataset = load_dataset("json", data_files=str(workdir / "dpo.jsonl"), split="train")
        config = DPOConfig(
            **common,
            per_device_train_batch_size=args.pairs,
            beta=BETA,
            loss_type=["sigmoid"],
            precompute_ref_log_probs=options["precompute"],
            precompute_ref_batch_size=args.pairs,
        )
        base = rss_mib()
        policy = model()
        reference = model()  # the same initial weights: a frozen copy, as TRL makes without one
        trainer = DPOTrainer(
            model=policy,
            ref_model=reference,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[Stamp()],
        )
    trainer.train()
    return {"seconds": stamps[steps_of(args, task)] - stamps[args.warmup], "base_rss": base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="sft,dpo", help="comma-separated: sft, dpo (default both)")
    parser.add_argument("--seq", type=int, default=512, help="tokens per (padded) row (default 512)")
    parser.add_argument("--batch", type=int, default=4, help="SFT rows per step (default 4)")
    parser.add_argument("--pairs", type=int, default=2, help="DPO pairs per step (default 2)")
    parser.add_argument("--steps", type=int, default=4, help="timed optimizer steps (default 4)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--reps", type=int, default=2, help="jobs per row, ABBA order (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job (default 1)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time or wall time")
    parser.add_argument("--control", action="store_true", help="also repeat the TRL job (A/A noise floor)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--job", choices=list(JOBS), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        task, side, options = JOBS[args.job]
        start = time.perf_counter()
        result = (kit_job if side == "kit" else trl_job)(args, Path(args.workdir), task, options)
        emit(result | {"peak_rss": peak_rss_mib(), "wall": time.perf_counter() - start})
        return

    tasks = [t for t in args.task.split(",") if t]
    if set(tasks) - {"sft", "dpo"}:
        parser.error("--task takes sft and/or dpo")
    print(host_line(args.threads))
    print(
        f"Qwen3 shape ~18.9M (vocab 16384), rows padded to T={args.seq}, SFT {args.batch} rows/step, DPO "
        f"{args.pairs} pairs/step, {args.steps} timed + {args.warmup} warm-up steps, fp32, AdamW, "
        f"{args.clock} clock",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        make_data(workdir, rows=max(64, 4 * (args.warmup + args.steps) * max(args.batch, args.pairs)), seq=args.seq)
        save_init_model(workdir, args.seq)
        worker = [
            "--seq",
            str(args.seq),
            "--batch",
            str(args.batch),
            "--pairs",
            str(args.pairs),
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--clock",
            args.clock,
            "--workdir",
            tmp,
        ]
        for task in tasks:
            names = [n for n, (t, _s, _o) in JOBS.items() if t == task and ("control" not in n or args.control)]
            tokens = args.steps * rows_per_step(args, task) * args.seq
            rates = {n: [] for n in names}
            peaks = {n: [] for n in names}
            growth = {n: [] for n in names}
            print(f"{task.upper()}:", flush=True)
            for rep, name in abba(names, args.reps):
                result = run_worker(__file__, worker + ["--job", name], args.threads)
                rates[name].append(tokens / result["seconds"])
                peaks[name].append(result["peak_rss"])
                growth[name].append(result["peak_rss"] - result["base_rss"])
                print(
                    f"  rep {rep} {name:<38} {rates[name][-1]:8.1f} tokens/s, peak RSS {peaks[name][-1]:,.0f} MiB "
                    f"(+{growth[name][-1]:,.0f}), job wall {result['wall']:.0f} s",
                    flush=True,
                )
            reference = REFERENCE[task]
            print(f" {task} tokens/s (best / median; ratio vs {reference}: of best / of median / paired)")
            print("\n".join(ratio_table(rates, reference, "tokens/s", higher_is_better=True)))
            print(f" {task} peak RSS, MiB (min / median; ratios)")
            print("\n".join(ratio_table(peaks, reference, "MiB", "{:,.0f}")))
            print(f" {task} peak RSS growth over the pre-model RSS, MiB (min / median; ratios)")
            print("\n".join(ratio_table(growth, reference, "MiB", "{:,.0f}")))


if __name__ == "__main__":
    main()
