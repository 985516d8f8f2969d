"""``run``, ``resolve`` and ``diff``: the recipe commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from argonne_kit.errors import RecipeError
from argonne_kit.recipe.diff import diff_any, format_changes, resolve_any
from argonne_kit.recipe.pipeline import load_pipeline, stage_overrides

OVERRIDE_HELP = "dotted overrides, e.g. optim.lr=1e-4 train.micro_batch_size=4 (typed by the schema)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser(
        "run",
        help="train (any stage) from a recipe",
        description="Resolve a recipe and run it: pretraining, continued pretraining, "
        "midtraining, SFT, DPO or CoT-SFT — a stage is a recipe. Works "
        "single-process or under torchrun. A pipeline file ([[stage]] tables, "
        "e.g. recipes/quickstart_chat.toml) runs its stage recipes in order, "
        "skipping stages whose final_model/ exists.",
    )
    run.add_argument("recipe", help="recipe .toml file, or a pipeline file of [[stage]] recipes")
    run.add_argument(
        "overrides",
        nargs="*",
        help=OVERRIDE_HELP + "; for a pipeline, N:key=value or STAGE_NAME:key=value overrides one stage",
    )
    run.set_defaults(func=cmd_run)

    resolve = sub.add_parser(
        "resolve",
        help="print the resolved recipe as TOML",
        description="Load a recipe (extends + overrides), check it, compute every "
        "derived value and print the result as TOML. Runs nothing.",
    )
    resolve.add_argument(
        "recipe",
        help="recipe .toml, pipeline file (every stage is printed), run directory, checkpoint or exported model",
    )
    resolve.add_argument("overrides", nargs="*", help=OVERRIDE_HELP)
    resolve.add_argument("--no-derived", action="store_true", help="omit the [derived] section")
    resolve.set_defaults(func=cmd_resolve)

    diff = sub.add_parser(
        "diff",
        help="what differs between two resolved recipes",
        description="Compare two resolved recipes key by key, grouped by section. A and B "
        "may each be a recipe file, a run directory, a checkpoint or an "
        "exported model directory; one of them may be a released model without "
        "a recipe (a Hub repo id or a directory with config.json), whose config "
        "is then compared with the other side's [model] section. Exit status 0 "
        "when equal, 1 when they differ.",
    )
    diff.add_argument("a", help="recipe .toml, run directory, checkpoint or exported model")
    diff.add_argument("b", help="the same kinds of input as A, or a Hub repo id / model directory")
    diff.add_argument("--json", action="store_true", help="machine-readable output")
    diff.add_argument("--meta", action="store_true", help="also compare provenance ([meta]: versions, git revision)")
    diff.add_argument(
        "--derived",
        action="store_true",
        help="also compare derived values ([derived]: head_dim, accumulation, LR landmarks…)",
    )
    diff.set_defaults(func=cmd_diff)


def cmd_resolve(args: argparse.Namespace) -> int:
    stages = load_pipeline(args.recipe)
    targets = (
        [(None, args.recipe, args.overrides)]
        if stages is None
        else [(stage, stage.recipe, own) for stage, own in zip(stages, stage_overrides(stages, args.overrides))]
    )
    for stage, path, overrides in targets:
        resolved = resolve_stage(stage, path, overrides)
        if args.no_derived:
            resolved.derived.clear()
        if stage is not None:
            sys.stdout.write(f"# ===== {stage.label} of {args.recipe}: {path} =====\n")
        sys.stdout.write(resolved.to_toml())
        for note in resolved.notes:
            print(f"# {note}", file=sys.stderr)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    for path in (args.a, args.b):
        if load_pipeline(path) is not None:
            raise RecipeError(f"{path}: a pipeline file; diff one of its stage recipes (or run directories)")
    changes = diff_any(args.a, args.b, include_meta=args.meta, include_derived=args.derived)
    if args.json:
        print(
            json.dumps(
                {
                    "a": args.a,
                    "b": args.b,
                    "equal": not changes,
                    "changes": [{"section": c.section, "key": c.key, "a": c.a, "b": c.b} for c in changes],
                },
                indent=2,
            )
        )
    else:
        print(format_changes(changes, args.a, args.b))
    return 1 if changes else 0


def cmd_run(args: argparse.Namespace) -> int:
    stages = load_pipeline(args.recipe)
    if stages is None:
        return run_one(resolve_any(args.recipe, args.overrides), args.recipe, args.overrides)
    from argonne_kit.train.export import FINAL_MODEL_DIR

    say = print if os.environ.get("RANK", "0") == "0" else (lambda *_a, **_k: None)
    for stage, overrides in zip(stages, stage_overrides(stages, args.overrides)):
        resolved = resolve_stage(stage, stage.recipe, overrides)
        final = Path(resolved.recipe.run.dir) / FINAL_MODEL_DIR
        if final.is_dir():
            say(
                f"argonne-kit: {stage.label} of {len(stages)}: complete ({final} exists), skipped; "
                f"delete it or set another run.dir to train it again",
                flush=True,
            )
            continue
        say(f"argonne-kit: {stage.label} of {len(stages)}: {stage.recipe}", flush=True)
        code = run_one(resolved, args.recipe, args.overrides)
        if code != 0:
            say(f"argonne-kit: {stage.label} failed (exit status {code}); later stages not run", file=sys.stderr)
            return code
        if not final.is_dir():  # stopped early on purpose (wall time, signal): resumable, not complete
            say(
                f"argonne-kit: {stage.label} stopped before its budget completed; run the same command "
                f"again to resume it and the stages after it",
                flush=True,
            )
            return 0
    return 0


def resolve_stage(stage, path, overrides: list[str]):
    """``resolve_any``; a pipeline stage's errors say which stage, and how to aim an override."""
    if stage is None:
        return resolve_any(path, overrides)
    try:
        return resolve_any(path, overrides)
    except RecipeError as exc:
        raise RecipeError(
            f"{stage.label}: {exc} (an override for one stage only takes its number or "
            f"name: {stage.index}:section.key=value or {stage.recipe.stem}:section.key=value)"
        ) from None


def run_one(resolved, command_file: str, command_overrides: list[str]) -> int:
    """Run one resolved recipe, or say how to relaunch the command (``command_file`` — the recipe
    or pipeline file — with its overrides) with the processes the recipe asks for."""
    from argonne_kit.launch import relaunch_advice
    from argonne_kit.train.runner import run_recipe

    advice = relaunch_advice(command_file, command_overrides, resolved.recipe.run.nproc)
    if advice:
        print(f"argonne-kit: {advice}", file=sys.stderr)
        return 2
    return run_recipe(resolved)
