"""``eval``: judge a model — perplexity, NLL by position, the quality probe, lm-eval tasks."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from argonne_kit.cli._model import add_model_arguments, resolve_model_arg
from argonne_kit.errors import DataError, UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="perplexity, NLL by position, probe and lm-eval tasks of a model",
        description="Evaluate MODEL (a Hub id, an exported model, a run, a checkpoint or an original .pt). Without "
        "--data, perplexity uses the run's own validation batches ([val_data], "
        "train.val_batches), so it equals the trainer's val_loss. With --data (token "
        "shards, parquet or JSONL text) documents are packed with EOS separators as "
        "in training and scored one epoch in order. Without a task flag: --ppl.",
    )
    add_model_arguments(p)
    p.add_argument("--data", help='token shard directory/.bin, parquet file/directory or .jsonl ({"text": …} rows)')
    p.add_argument("--ppl", action="store_true", help="perplexity (mean NLL per predicted token)")
    p.add_argument("--nll-by-position", action="store_true", help="mean NLL per position bucket, as a table and a PNG")
    p.add_argument("--probe", action="store_true", help="answer the quality-probe prompts greedily into probe.jsonl")
    p.add_argument("--tasks", help="lm-eval tasks: T1,T2 or a task .yaml (needs the [eval] extra)")
    p.add_argument("--out", help="write every result to this JSON file")
    p.add_argument(
        "--seq-len", type=int, help="window length (default: the run's train.seq_len, else the model's context)"
    )
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward (default 8)")
    p.add_argument("--max-batches", type=int, help="score at most this many batches")
    p.add_argument(
        "--mode",
        choices=("packed", "document"),
        default="packed",
        help="packed windows across documents, or the start of each long-enough document",
    )
    p.add_argument("--text-column", default="text", help="text field of parquet/JSONL rows (default text)")
    p.add_argument("--buckets", help="position bucket edges, e.g. 0,1024,2048,4096 (default: 0, 1k, 2k, 4k, …)")
    p.add_argument("--plot", help="PNG of the NLL by position (default: nll_by_position.png beside --out, or here)")
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        help="autocast dtype (default: the run's train.precision, else fp32)",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run the model (default cpu)")
    p.add_argument("--probe-prompts", help="prompt file (lines or .jsonl), default: the six built-in prompts")
    p.add_argument("--probe-max-new-tokens", type=int, default=160, help="tokens per probe answer (default 160)")
    p.add_argument("--probe-dir", help="directory for probe.jsonl (default: beside --out, or here)")
    p.add_argument("--limit", type=int, help="lm-eval: examples per task at most")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from argonne_kit.evaluate.model import load_model_for_eval

    for flag in ("seq_len", "batch_size", "max_batches", "limit", "probe_max_new_tokens"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            raise UsageError(f"--{flag.replace('_', '-')}: expected a positive number, got {value}")
    if not (args.ppl or args.nll_by_position or args.probe or args.tasks):
        args.ppl = True
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available")
    loaded = load_model_for_eval(resolve_model_arg(args), args.device)
    if args.precision is None:
        args.precision = loaded.resolved.recipe.train.precision if loaded.resolved is not None else "fp32"
    results: dict = {"model": loaded.path}
    out_dir = Path(args.out).parent if args.out else Path(".")
    if args.ppl or args.nll_by_position:
        results.update(_score(args, loaded, out_dir))
    if args.probe:
        results["probe"] = _probe(args, loaded, out_dir)
    if args.tasks:
        from argonne_kit.evaluate.harness import run_tasks

        results["tasks"] = run_tasks(
            loaded.model,
            loaded.tokenizer,
            args.tasks,
            batch_size=args.batch_size,
            limit=args.limit,
            max_length=args.seq_len,
        )
    print(summary(results))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


def _score(args: argparse.Namespace, loaded, out_dir: Path) -> dict:
    from tqdm import tqdm

    from argonne_kit.evaluate.position import PositionBuckets, default_edges
    from argonne_kit.evaluate.score import token_nll
    from argonne_kit.evaluate.windows import batched, documents, validation_batches, windows

    trained = loaded.resolved.recipe.train.seq_len if loaded.resolved is not None else None
    if args.data is None:
        if loaded.resolved is None:
            raise UsageError(f"{args.model}: no resolved recipe with [val_data]; pass --data")
        if args.seq_len or args.mode != "packed":
            raise UsageError("--seq-len/--mode apply to --data; the run's validation batches have its own layout")
        batches = validation_batches(loaded.resolved, loaded.tokenizer, args.max_batches)
        train = loaded.resolved.recipe.train
        total, seq_len, source = args.max_batches or train.val_batches, train.seq_len, "val_data"
    else:
        seq_len = args.seq_len or trained or loaded.model.config.max_position_embeddings
        docs = documents(args.data, loaded.tokenizer, args.text_column, split_shards=args.mode == "document")
        batches = batched(windows(docs, seq_len, args.mode), args.batch_size, args.max_batches)
        total, source = args.max_batches, args.data
    try:
        edges = [int(e) for e in args.buckets.split(",")] if args.buckets else default_edges(seq_len)
        buckets = PositionBuckets(edges)
    except ValueError as exc:
        raise UsageError(f"--buckets: {exc}") from None
    nll_sum, tokens = 0.0, 0
    for batch in tqdm(batches, total=total, desc="scoring", unit="batch"):
        nll = token_nll(loaded.model, batch, args.precision)
        nll_sum += nll.sum().item()
        tokens += nll.numel()
        buckets.add(nll)
    if tokens == 0:
        raise DataError(
            f"{source}: no window of at least 2 tokens"
            + (f" (document mode needs documents of {seq_len + 1} tokens)" if args.mode == "document" else "")
        )
    out: dict = {"data": source, "seq_len": seq_len, "tokens": tokens}
    if args.ppl:
        out["nll"] = nll_sum / tokens
        out["perplexity"] = math.exp(nll_sum / tokens)
    if args.nll_by_position:
        out["nll_by_position"] = buckets.rows()
        print(buckets.table())
        plot = Path(args.plot) if args.plot else out_dir / "nll_by_position.png"
        try:
            out["nll_by_position_plot"] = str(buckets.plot(plot, Path(loaded.path).name, trained))
        except ImportError:
            print("note: matplotlib is not installed; no PNG written")
    return out


def _probe(args: argparse.Namespace, loaded, out_dir: Path) -> list[dict]:
    from argonne_kit.probe import PROBE_FILE, ChatProbe
    from argonne_kit.recipe.sections import EvalConfig

    cfg = EvalConfig(probe=True, probe_prompts=args.probe_prompts, probe_max_new_tokens=args.probe_max_new_tokens)
    directory = Path(args.probe_dir) if args.probe_dir else out_dir
    rows = ChatProbe.from_config(cfg).run(loaded.model, loaded.tokenizer, directory, step=0, label="eval")
    print(f"probe: {len(rows)} answers appended to {directory / PROBE_FILE}")
    return rows


def summary(results: dict) -> str:
    """The printed summary table."""
    lines = [f"{'metric':<40} value", f"{'-' * 40} {'-' * 12}"]
    if "perplexity" in results:
        lines.append(f"{'perplexity (' + str(results['data']) + ')':<40} {results['perplexity']:.4f}")
        lines.append(f"{'mean NLL':<40} {results['nll']:.6f}")
        lines.append(f"{'tokens scored':<40} {results['tokens']:,}")
    for row in results.get("nll_by_position", []):
        lines.append(f"{'NLL @ ' + format(row['from'], ',') + '–' + format(row['to'], ','):<40} {row['nll']:.4f}")
    for task, metrics in results.get("tasks", {}).items():
        for metric, value in metrics.items():
            lines.append(f"{task + ' ' + metric:<40} {value:.4f}")
    if "probe" in results:
        lines.append(f"{'probe answers':<40} {len(results['probe'])}")
    return "\n".join(lines)
