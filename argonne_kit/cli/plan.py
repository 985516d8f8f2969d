"""``plan``: parameters, per-GPU memory, FLOPs and time of a recipe before launching it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from argonne_kit.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from argonne_kit.plan.gpus import GPUS

    p = sub.add_parser(
        "plan",
        help="memory, FLOPs and time of a recipe before launch",
        description="Resolve RECIPE and print: exact parameter counts; per-GPU memory by "
        "component for its parallel strategy and world size, and whether it fits; "
        "FLOPs per token (6N + attention, LM head included) and per step; steps, "
        "tokens, time and GPU-hours at --mfu; the MFU a measured --tokens-per-s "
        "implies; warnings. Runs nothing and reads no data beyond shard manifests.",
    )
    p.add_argument("recipe", help="recipe .toml, run directory, checkpoint or exported model")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.micro_batch_size=16")
    p.add_argument("--gpu", choices=sorted(GPUS), default="h100", help="GPU model (default h100)")
    p.add_argument("--gpus", type=int, help="GPUs per node (default: the recipe's run.nproc, else 1)")
    p.add_argument("--nodes", type=int, default=1, help="nodes (default 1)")
    p.add_argument("--mfu", type=float, default=0.4, help="model FLOPs utilisation for the time estimate (default 0.4)")
    p.add_argument(
        "--tokens-per-s", type=float, help="measured throughput of all GPUs together: print the MFU it implies"
    )
    p.add_argument(
        "--vocab-size", type=int, help="vocabulary rows when the recipe leaves them to a tokenizer that is not at hand"
    )
    p.add_argument("--data-tokens", type=int, help="tokens of one epoch of [data] when the data is not at hand")
    p.add_argument("--lr-plot", metavar="PNG", help="write the phase's LR curve to this PNG")
    p.add_argument("--json", metavar="FILE", help="also write the plan as JSON")
    p.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    from argonne_kit.plan.gpus import GPUS
    from argonne_kit.plan.report import make_plan, plot_lr
    from argonne_kit.recipe.diff import resolve_any

    if args.mfu is not None and not 0 < args.mfu <= 1:
        raise UsageError(f"--mfu: expected a fraction in (0, 1], got {args.mfu}")
    for flag in ("gpus", "nodes", "vocab_size", "data_tokens"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            raise UsageError(f"--{flag.replace('_', '-')}: expected a positive number, got {value}")
    if args.tokens_per_s is not None and args.tokens_per_s <= 0:
        raise UsageError(f"--tokens-per-s: expected a positive number, got {args.tokens_per_s}")
    resolved = resolve_any(args.recipe, args.overrides)
    per_node = args.gpus or resolved.recipe.run.nproc or 1
    vocab = args.vocab_size or _tokenizer_vocab(resolved)
    plan = make_plan(
        resolved,
        gpu=GPUS[args.gpu],
        gpus=per_node * args.nodes,
        mfu=args.mfu,
        tokens_per_s=args.tokens_per_s,
        vocab_size=vocab,
        data_tokens=args.data_tokens,
    )
    print(format_plan(plan, args.recipe))
    if args.lr_plot:
        print(f"wrote {plot_lr(plan, resolved, Path(args.lr_plot))}")
    if args.json:
        Path(args.json).write_text(json.dumps(plan.to_dict(), indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _tokenizer_vocab(resolved) -> int | None:
    """``len(tokenizer)`` when the recipe's model takes its rows from the tokenizer."""
    if resolved.recipe.model.config.vocab_size is not None:
        return None
    from argonne_kit.data.tokenizer import load_tokenizer

    try:
        tokenizer, _ = load_tokenizer(resolved.recipe.tokenizer.path, resolved.base_dir)
    except Exception as exc:
        raise UsageError(
            f"{resolved.source}: model.vocab_size comes from tokenizer "
            f"{resolved.recipe.tokenizer.path!r}, which cannot be loaded here ({exc}); "
            "pass --vocab-size N"
        ) from None
    return len(tokenizer)


def format_plan(plan, source: str) -> str:
    from argonne_kit.plan.memory import GIB

    p = plan.params
    title = f"plan of {source} on {plan.gpus} × {plan.gpu.name} ({plan.setup.strategy}, {plan.setup.precision})"
    lines = [title, "", "parameters"]
    lines.append(f"  total              {p.total:>18,}")
    lines.append(f"  non-embedding      {p.non_embedding:>18,}")
    lines.append(f"  embedding          {p.embedding:>18,}  ({p.vocab_rows:,} rows × {plan.shape.hidden_size:,})")
    if p.head:
        lines.append(f"  untied LM head     {p.head:>18,}")
    if p.vocab_rows != p.vocab_unpadded:
        lines.append(
            f"  vocabulary padded from {p.vocab_unpadded:,} to {p.vocab_rows:,} rows; "
            f"{p.total_unpadded:,} parameters once trimmed (export)"
        )
    lines += [
        "",
        (
            f"FLOPs (6·N with N = {p.matmul:,} matmul weights incl. the LM head, plus attention "
            "12·layers·d·keys; windows count their window)"
        ),
    ]
    lines.append(
        f"  per token          {plan.flops_per_token / 1e9:>14.2f} GFLOP  "
        f"(attention {plan.attention_flops_per_token / 1e9:.2f} at {plan.setup.seq_len:,} tokens)"
    )
    lines.append(
        f"  per step           {plan.flops_per_step / 1e15:>14.3f} PFLOP  "
        f"({plan.tokens_per_step:,} tokens, {plan.grad_accum_steps} accumulation steps)"
    )
    if plan.total_steps is not None:
        lines.append(
            f"  phase              {plan.total_steps:>18,} steps, {plan.phase_tokens:,} tokens, "
            f"{plan.phase_tokens * plan.flops_per_token:.3e} FLOP"
        )
        hours = plan.hours()
        lines.append(f"  time at MFU {plan.mfu:.0%}    {hours:>14.1f} h  ({hours * plan.gpus:,.0f} GPU-hours)")
    if plan.tokens_per_s is not None:
        lines.append(f"  {plan.tokens_per_s:,.0f} tokens/s on {plan.gpus} GPUs = MFU {plan.implied_mfu():.1%}")
    if plan.memory is not None:
        m = plan.memory
        lines += [
            "",
            f"memory per GPU (micro-batch {plan.setup.micro_batch_size} × {plan.setup.seq_len:,} tokens"
            + (", activation checkpointing" if plan.setup.activation_checkpointing else "")
            + (f", chunked CE {plan.setup.loss_chunk_size}" if plan.setup.loss_chunk_size else "")
            + ")",
        ]
        for name, value in m.components.items():
            lines.append(f"  {name:<40} {value / GIB:>9.2f} GiB")
        lines.append(
            f"  {'predicted peak (' + m.peak_phase + ')':<40} {m.peak / GIB:>9.2f} GiB of "
            f"{plan.gpu.memory_bytes / GIB:.1f} GiB: {plan.fits()}"
        )
    if plan.lr_marks:
        lines += ["", "LR: " + ", ".join(f"{n} (step {s:,}) {lr:.3e}" for n, s, lr in plan.lr_marks)]
    for warning in plan.warnings:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)
