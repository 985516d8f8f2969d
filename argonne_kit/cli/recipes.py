"""``run``, ``resolve`` and ``diff``: the recipe commands."""

from __future__ import annotations

import argparse
import json
import sys

from argonne_kit.recipe.diff import diff_resolved, format_changes, resolve_any

OVERRIDE_HELP = "dotted overrides, e.g. optim.lr=1e-4 train.micro_batch_size=4 (typed by the schema)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="train (any stage) from a recipe",
                         description="Resolve a recipe and run it: pretraining, continued pretraining, "
                                     "midtraining, SFT, DPO or CoT-SFT — a stage is a recipe. Works "
                                     "single-process or under torchrun.")
    run.add_argument("recipe", help="recipe .toml file")
    run.add_argument("overrides", nargs="*", help=OVERRIDE_HELP)
    run.set_defaults(func=cmd_run)

    resolve = sub.add_parser("resolve", help="print the resolved recipe as TOML",
                             description="Load a recipe (extends + overrides), check it, compute every "
                                         "derived value and print the result as TOML. Runs nothing.")
    resolve.add_argument("recipe", help="recipe .toml, run directory, checkpoint or exported model")
    resolve.add_argument("overrides", nargs="*", help=OVERRIDE_HELP)
    resolve.add_argument("--no-derived", action="store_true", help="omit the [derived] section")
    resolve.set_defaults(func=cmd_resolve)

    diff = sub.add_parser("diff", help="what differs between two resolved recipes",
                          description="Compare two resolved recipes key by key, grouped by section. A and B "
                                      "may each be a recipe file, a run directory, a checkpoint or an "
                                      "exported model directory. Exit status 0 when equal, 1 when they differ.")
    diff.add_argument("a", help="recipe .toml, run directory, checkpoint or exported model")
    diff.add_argument("b", help="the same kinds of input as A")
    diff.add_argument("--json", action="store_true", help="machine-readable output")
    diff.add_argument("--meta", action="store_true", help="also compare provenance ([meta]: versions, git revision)")
    diff.add_argument("--derived", action="store_true",
                      help="also compare derived values ([derived]: head_dim, accumulation, LR landmarks…)")
    diff.set_defaults(func=cmd_diff)


def cmd_resolve(args: argparse.Namespace) -> int:
    resolved = resolve_any(args.recipe, args.overrides)
    if args.no_derived:
        resolved.derived.clear()
    sys.stdout.write(resolved.to_toml())
    for note in resolved.notes:
        print(f"# {note}", file=sys.stderr)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    a, b = resolve_any(args.a), resolve_any(args.b)
    changes = diff_resolved(a, b, include_meta=args.meta, include_derived=args.derived)
    if args.json:
        print(json.dumps({"a": args.a, "b": args.b, "equal": not changes,
                          "changes": [{"section": c.section, "key": c.key, "a": c.a, "b": c.b} for c in changes]},
                         indent=2))
    else:
        print(format_changes(changes, args.a, args.b))
    return 1 if changes else 0


def cmd_run(args: argparse.Namespace) -> int:
    from argonne_kit.launch import relaunch_advice
    from argonne_kit.train.runner import run_recipe

    resolved = resolve_any(args.recipe, args.overrides)
    advice = relaunch_advice(args.recipe, args.overrides, resolved.recipe.run.nproc)
    if advice:
        print(f"argonne-kit: {advice}", file=sys.stderr)
        return 2
    return run_recipe(resolved)
