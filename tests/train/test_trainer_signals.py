"""Signals as schedulers send them, to the whole process group (``kill -- -PGID``), while
DataLoader workers run: SIGTERM saves and exits 0. The workers ignore the stop signals (SIGINT
too: a terminal's Ctrl-C reaches the whole foreground group), so no worker traceback and no lost
save. SIGINT's own exit status (130) is tested in-process in test_trainer_checkpoints.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_fixtures import write_recipe

from argonne_kit.train.checkpoint import CHECKPOINTS_DIR, list_checkpoints, verify_checkpoint
from argonne_kit.train.stop import SIGNALS, ignore_stop_signals

HERE = Path(__file__).resolve().parent
LAUNCHER = """
import sys
sys.path.insert(0, {here!r})
from train_fixtures import register_synthetic_data
register_synthetic_data()
from argonne_kit.cli import main
sys.exit(main(["run", {recipe!r}]))
"""


def logged_steps(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return 0
    return sum('"loss"' in line for line in path.read_text().splitlines())


def test_workers_ignore_every_stop_signal():
    saved = {sig: signal.getsignal(sig) for sig in SIGNALS}
    try:
        ignore_stop_signals(0)
        assert {sig: signal.getsignal(sig) for sig in SIGNALS} == dict.fromkeys(
            (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT), signal.SIG_IGN
        )
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@pytest.mark.slow
def test_sigterm_to_the_process_group_with_workers_saves_and_exits_zero(tmp_path):
    sig, status = signal.SIGTERM, 0
    recipe = write_recipe(
        tmp_path,
        '[data]\nkind = "synthetic_tokens"\nnum_workers = 2\n'
        "[train]\nseq_len = 32\nmicro_batch_size = 4\nmax_steps = 100000\n"
        'precision = "fp32"\ndevice = "cpu"\nlog_every = 1\n'
        "[checkpoint]\ninterval_steps = 100000\n",
    )
    script = tmp_path / "launch.py"
    script.write_text(LAUNCHER.format(here=str(HERE), recipe=str(recipe)))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        start_new_session=True,
    )
    run_dir = tmp_path / "run"
    deadline = time.monotonic() + 120
    while logged_steps(run_dir) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stdout.read()
    os.killpg(proc.pid, sig)  # what a scheduler does: every process of the group
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == status, out[-3000:]
    assert f"received {signal.Signals(sig).name}" in out and "Traceback" not in out
    ((step, path),) = list_checkpoints(run_dir / CHECKPOINTS_DIR)
    assert step >= 3 and verify_checkpoint(path, expect_step=step)["step"] == step
    last = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert last[-1]["step"] == step  # saved at the step it stopped on: an exact resume point
    with pytest.raises(ProcessLookupError):  # no worker outlived the run
        os.killpg(proc.pid, 0)
