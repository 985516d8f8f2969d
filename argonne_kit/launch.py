"""How to launch a recipe on the processes it asks for (``run.nproc``).

Pure functions, no torch: ``argonne-kit run`` calls :func:`relaunch_advice` before building
anything and prints the advice when the current process count does not match the recipe; the
SLURM command reuses :func:`torchrun_argv`.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence


def current_world_size(env: Mapping[str, str] | None = None) -> int:
    """Processes in this launch: ``WORLD_SIZE`` set by torchrun/srun, else 1."""
    env = os.environ if env is None else env
    try:
        return max(1, int(env.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def torchrun_argv(
    recipe: str, overrides: Sequence[str], nproc_per_node: int, nnodes: int = 1, rdzv_endpoint: str | None = None
) -> list[str]:
    """The ``torchrun … -m argonne_kit run RECIPE OVERRIDES`` command. One node uses
    ``--standalone``; several nodes rendezvous at ``rdzv_endpoint`` (``host:port``)."""
    argv = ["torchrun"]
    if nnodes == 1:
        argv.append("--standalone")
    else:
        endpoint = rdzv_endpoint or "$MASTER_ADDR:29500"
        argv += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}"]
    argv += [f"--nproc-per-node={nproc_per_node}", "-m", "argonne_kit", "run", recipe, *overrides]
    return argv


def relaunch_advice(
    recipe: str,
    overrides: Sequence[str],
    nproc: int | None,
    env: Mapping[str, str] | None = None,
    gpus_per_node: int | None = None,
) -> str | None:
    """None when this launch has the processes the recipe asks for (or it asks for none);
    otherwise a message with the command line to use. ``gpus_per_node`` (when known) splits a
    request larger than one node into nodes."""
    world = current_world_size(env)
    if nproc is None or nproc == world:
        return None
    have = f"this launch has {world} process{'es' if world != 1 else ''}"
    if gpus_per_node and nproc > gpus_per_node and nproc % gpus_per_node == 0:
        nodes = nproc // gpus_per_node
        line = shlex.join(torchrun_argv(recipe, overrides, gpus_per_node, nodes, "HOST:29500"))
        return (
            f"run.nproc = {nproc} but {have}. On each of {nodes} nodes run (HOST = the first "
            f"node):\n  {line}\nor submit it with: argonne-kit slurm {shlex.quote(recipe)}"
        )
    line = shlex.join(torchrun_argv(recipe, overrides, nproc))
    return f"run.nproc = {nproc} but {have}. Launch it with:\n  {line}"


# -- SLURM --------------------------------------------------------------------------------------

#: The sbatch template shipped with the package (``scripts/slurm/argonne.sbatch`` links to it).
SBATCH_TEMPLATE = ("resources", "slurm", "argonne.sbatch")


def sbatch_template() -> str:
    from importlib.resources import files

    resource = files("argonne_kit")
    for part in SBATCH_TEMPLATE:
        resource = resource / part
    return resource.read_text()


def render_sbatch(
    *,
    recipe: str,
    overrides: Sequence[str],
    run_dir: str,
    script: str,
    python: str,
    nodes: int,
    gpus_per_node: int,
    time: str,
    job_name: str,
    cpus_per_task: int = 8,
    warning_s: int = 300,
    max_slices: int = 100,
    max_failures: int = 2,
    extra_sbatch: Mapping[str, str] | None = None,
) -> str:
    """The sbatch script for one slice of ``recipe`` (see the template's header). A value holding
    a control character (a newline would start a new script line) is refused; shell lines get
    shell-quoted values, ``#SBATCH`` lines (parsed by sbatch, not the shell) double-quoted ones;
    ``extra_sbatch`` maps further sbatch options (``partition``…) to their values."""
    extra = dict(extra_sbatch or {})
    named = {
        "recipe path": recipe,
        "run.dir": run_dir,
        "script path": script,
        "python": python,
        "--job-name": job_name,
        "--time": time,
        **{f"--{k}": v for k, v in extra.items()},
        **{f"override {i + 1}": o for i, o in enumerate(overrides)},
    }
    for what, value in named.items():
        refuse_control_characters(what, value)
    values = {
        "JOB_NAME": sbatch_quote("--job-name", job_name),
        "NODES": str(nodes),
        "GPUS_PER_NODE": str(gpus_per_node),
        "CPUS_PER_TASK": str(cpus_per_task),
        "TIME": sbatch_quote("--time", time),
        "WARNING_S": str(warning_s),
        "OUTPUT": sbatch_quote("run.dir", run_dir.replace("%", "%%") + "/slurm/slice-%j.out"),
        "RUN_DIR": shlex.quote(run_dir),
        "RECIPE": shlex.quote(recipe),
        "OVERRIDES": " ".join(shlex.quote(o) for o in overrides),
        "SCRIPT": shlex.quote(script),
        "PYTHON": shlex.quote(python),
        "MAX_SLICES": str(max_slices),
        "MAX_FAILURES": str(max_failures),
        "EXTRA_SBATCH": "\n".join(f"#SBATCH --{k}={sbatch_quote('--' + k, v)}" for k, v in extra.items()),
    }
    text = sbatch_template()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def refuse_control_characters(what: str, value: str) -> None:
    """A :class:`UsageError` when ``value`` holds a control character (newline, tab, escape…)."""
    from argonne_kit.errors import UsageError

    bad = next((c for c in value if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        raise UsageError(
            f"{what}: {value!r} contains the control character {bad!r}, which could inject "
            f"lines into the sbatch script; refused"
        )


def sbatch_quote(what: str, value: str) -> str:
    """``value`` for an ``#SBATCH`` line: as is when it holds only ``A-Z a-z 0-9 . _ : @ / + = , % -``,
    else double-quoted (sbatch's own parser honours double quotes; the shell never sees these
    lines); quotes and backslashes are refused."""
    from argonne_kit.errors import UsageError

    refuse_control_characters(what, value)
    if '"' in value or "\\" in value:
        raise UsageError(
            f"{what}: {value!r} contains a double quote or backslash, which an #SBATCH line cannot hold safely; refused"
        )
    return value if _SBATCH_PLAIN.fullmatch(value) else f'"{value}"'


_SBATCH_PLAIN = re.compile(r"[A-Za-z0-9._:@/+=,%-]+")
