"""``slurm``: write (and submit) the self-resubmitting sbatch script of a recipe."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from argonne_kit.errors import ArgonneError, RecipeError, UsageError
from argonne_kit.safe_io import atomic_write_text

OVERRIDE_HELP = "dotted overrides, e.g. optim.lr=1e-4 (passed to every slice)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "slurm",
        help="write/submit a SLURM job that trains a recipe slice by slice",
        description="Write RUN_DIR/slurm/argonne.sbatch for a recipe: one task per GPU "
        "on NODES nodes, SIGUSR1 before the time limit makes the trainer "
        "save and exit, and the job resubmits itself until the run's budget "
        "completes (final_model/ exists). With --submit, also run sbatch.",
    )
    p.add_argument("recipe", help="recipe .toml file")
    p.add_argument("overrides", nargs="*", help=OVERRIDE_HELP)
    p.add_argument("--nodes", type=int, default=1, help="nodes per slice (default 1)")
    p.add_argument("--gpus-per-node", type=int, default=8, help="GPUs (= processes) per node (default 8)")
    p.add_argument("--time", default="24:00:00", help="time limit of one slice, SLURM format (default 24:00:00)")
    p.add_argument("--cpus-per-task", type=int, default=8, help="CPU cores per process (default 8)")
    p.add_argument(
        "--warning-s",
        type=int,
        default=300,
        help="seconds before the time limit at which SIGUSR1 asks the trainer to save and exit "
        "(default 300; leave room for one checkpoint)",
    )
    p.add_argument("--max-slices", type=int, default=100, help="never run more slices than this (default 100)")
    p.add_argument("--max-failures", type=int, default=2, help="failed slices retried before giving up (default 2)")
    p.add_argument("--partition", help="SLURM partition")
    p.add_argument("--account", help="SLURM account")
    p.add_argument("--qos", help="SLURM quality of service")
    p.add_argument("--job-name", help="job name (default: the run directory's name)")
    p.add_argument("--submit", action="store_true", help="submit the script with sbatch after writing it")
    p.set_defaults(func=cmd_slurm)


def cmd_slurm(args: argparse.Namespace) -> int:
    from argonne_kit.launch import render_sbatch
    from argonne_kit.recipe.api import resolve_recipe

    for name in ("nodes", "gpus_per_node", "cpus_per_task", "max_slices"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    if not re.fullmatch(r"(\d+-)?\d+(:\d{1,2}){0,2}", args.time):
        raise UsageError(f"--time {args.time!r}: expected SLURM time such as 24:00:00 or 1-00:00:00")
    nproc = args.nodes * args.gpus_per_node
    overrides = list(args.overrides)
    resolved = resolve_recipe(args.recipe, overrides)
    wanted = resolved.recipe.run.nproc
    if wanted is None:
        # batch math (gradient accumulation) depends on the number of data-parallel ranks
        overrides.append(f"run.nproc={nproc}")
        resolved = resolve_recipe(args.recipe, overrides)
    elif wanted != nproc:
        raise RecipeError(
            f"{args.recipe}: run.nproc = {wanted} but --nodes {args.nodes} × "
            f"--gpus-per-node {args.gpus_per_node} = {nproc} processes"
        )
    run_dir = Path(resolved.recipe.run.dir).resolve()
    script = run_dir / "slurm" / "argonne.sbatch"
    extra = {
        key: value
        for key, value in (("partition", args.partition), ("account", args.account), ("qos", args.qos))
        if value
    }
    text = render_sbatch(
        recipe=str(Path(args.recipe).resolve()),
        overrides=overrides,
        run_dir=str(run_dir),
        script=str(script),
        python=sys.executable,
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        time=args.time,
        job_name=args.job_name or run_dir.name,
        cpus_per_task=args.cpus_per_task,
        warning_s=args.warning_s,
        max_slices=args.max_slices,
        max_failures=args.max_failures,
        extra_sbatch=extra,
    )
    script.parent.mkdir(parents=True, exist_ok=True)  # only once every value passed the checks
    atomic_write_text(script, text)
    os.chmod(script, 0o755)
    print(f"wrote {script}")
    if not args.submit:
        print(f"submit with: sbatch {shlex.quote(str(script))}")
        return 0
    try:
        done = subprocess.run(["sbatch", str(script)], capture_output=True, text=True)
    except FileNotFoundError:
        raise UsageError(
            "sbatch not found: run this on a SLURM login node, or submit the script written above yourself"
        ) from None
    sys.stdout.write(done.stdout)
    if done.returncode != 0:
        raise ArgonneError(f"sbatch failed (exit {done.returncode}): {done.stderr.strip()}")
    return 0
