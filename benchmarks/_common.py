"""Shared by the side-by-side benchmarks: the host line every script prints, peak-memory readings,
ABBA ordering, worker subprocesses that report one JSON line, and the ratio table.

Method (the same in every script): each side runs the same work; repetitions alternate in ABBA
order so a neighbour's load or a drifting clock favours neither side; ``--control`` adds a second,
identical copy of the peer whose "ratio" is the noise floor of the run; times are process CPU
time by default (robust on a shared, oversubscribed machine; use with ``--threads 1``).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable

#: CPU flags worth printing beside a ratio: they decide which kernels torch uses.
FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile", "fma")


def cpu_flags() -> list[str]:
    """The interesting flags of this host's CPU (Linux; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return []
    present = set(line.split(":", 1)[-1].split())
    return [flag for flag in FLAGS if flag in present]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.processor()
            )
    except OSError:
        return platform.processor()


def host_line(threads: int | None = None) -> str:
    """One line: CPU model and flags, torch threads, torch (and transformers) version."""
    import torch

    versions = f"torch {torch.__version__}"
    try:
        import transformers

        versions += f", transformers {transformers.__version__}"
    except ImportError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"host: {cpu_model()} [{' '.join(cpu_flags()) or 'no flags read'}], {os.cpu_count()} CPUs, "
        f"{threads or torch.get_num_threads()} torch threads, {versions}{gpu}"
    )


def peak_rss_mib() -> float:
    """High-water resident set size of this process, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """Current resident set size of this process, MiB."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mib()


def clock(kind: str) -> Callable[[], float]:
    import time

    return time.process_time if kind == "cpu" else time.perf_counter


def abba(names: list[str], reps: int) -> Iterable[tuple[int, str]]:
    """(repetition, name) in ABBA order: forward on even repetitions, reversed on odd ones."""
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            yield rep, name


def run_worker(script: str, args: list[str], threads: int | None, timeout: float | None = None) -> dict:
    """Run ``python script --worker ARGS`` in a fresh process (its own peak RSS) and return the
    JSON of its ``RESULT`` line."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    cmd = [sys.executable, script, "--worker", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(
        f"{' '.join(cmd)} produced no result (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    )


def emit(result: dict) -> None:
    """Worker side: the one line :func:`run_worker` reads."""
    print("RESULT " + json.dumps(result), flush=True)


def ratio_table(
    values: dict[str, list[float]], reference: str, unit: str, fmt: str = "{:,.1f}", higher_is_better: bool = False
) -> list[str]:
    """Rows ``name  min / median  ratio of best / of median / median of paired ratios`` against
    ``reference``; "best" is the min for times and the max for rates."""
    best = max if higher_is_better else min
    lines = []
    for name, series in values.items():
        row = f"  {name:<34} {fmt.format(best(series))} / {fmt.format(statistics.median(series))} {unit}"
        if name != reference:
            ref = values[reference]
            paired = statistics.median(a / b for a, b in zip(series, ref))
            row += (
                f"  ratio {best(series) / best(ref):.3f} / "
                f"{statistics.median(series) / statistics.median(ref):.3f} / {paired:.3f}"
            )
        lines.append(row)
    return lines
