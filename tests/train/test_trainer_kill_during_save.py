"""SIGKILL at random moments while a run saves every step: the newest checkpoint left behind
always verifies and loads, a temporary directory is never taken for a checkpoint, and the next
launch collects the temporaries and finishes the run (D-9, D-14)."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_fixtures import write_recipe

from argonne_kit.model import build_model
from argonne_kit.recipe.diff import resolve_any
from argonne_kit.registry import get_registry
from argonne_kit.train.checkpoint import CHECKPOINTS_DIR, TMP_PREFIX, CheckpointManager, list_checkpoints

HERE = Path(__file__).resolve().parent
LAUNCHER = """
import sys
sys.path.insert(0, {here!r})
from train_fixtures import register_synthetic_data
register_synthetic_data()
from argonne_kit.cli import main
sys.exit(main(["run", {recipe!r}]))
"""


def start(script: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    )


def wait_for_checkpoints(ckpt_dir: Path, proc: subprocess.Popen, at_least: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list_checkpoints(ckpt_dir)) >= at_least or proc.poll() is not None:
            return
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("no checkpoint appeared in time")


def wait_for_a_save_in_progress(ckpt_dir: Path, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.name.startswith(TMP_PREFIX + "step_") for p in ckpt_dir.iterdir()):
            return
        time.sleep(0.001)


@pytest.mark.slow
def test_sigkill_during_saves_never_loses_the_previous_checkpoint(tmp_path):
    # saves every step with keep_last = 1: each step writes, verifies, renames and prunes
    recipe = write_recipe(
        tmp_path,
        "[train]\nseq_len = 32\nmicro_batch_size = 4\nmax_steps = 24\n"
        'precision = "fp32"\ndevice = "cpu"\nlog_every = 1\n'
        "[checkpoint]\ninterval_steps = 1\nkeep_last = 1\n",
    )
    script = tmp_path / "launch.py"
    script.write_text(LAUNCHER.format(here=str(HERE), recipe=str(recipe)))
    ckpt_dir = tmp_path / "run" / CHECKPOINTS_DIR
    resolved = resolve_any(recipe)
    strategy = get_registry().get("parallel", "single").factory(resolved.recipe.parallel.config)
    strategy.setup(device="cpu")
    rng = random.Random(1234)
    seen_temporaries = 0
    for attempt in range(3):
        proc = start(script)
        wait_for_checkpoints(ckpt_dir, proc, at_least=1)
        wait_for_a_save_in_progress(ckpt_dir, proc)
        time.sleep(rng.uniform(0.0, 0.05))  # somewhere in write / verify / rename / prune
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        temporaries = [p.name for p in ckpt_dir.iterdir() if p.name.startswith(TMP_PREFIX)]
        seen_temporaries += bool(temporaries)
        manager = CheckpointManager(tmp_path / "run", strategy, log=lambda _m: None)
        complete = manager.checkpoints()
        assert complete, f"attempt {attempt}: no checkpoint survived"
        assert all(not p.name.startswith(TMP_PREFIX) for _s, p in complete)
        latest = manager.latest()
        assert latest == complete[-1][1], f"attempt {attempt}: newest checkpoint {complete[-1][1]} unreadable"
        fresh_model = _model_like_the_run(resolved)
        state = manager.load(latest, fresh_model, None)
        assert state["global_step"] == complete[-1][0]
        assert all(torch.isfinite(p).all() for p in fresh_model.parameters())

    print(f"kills that left a temporary checkpoint directory behind: {seen_temporaries} of 3")
    proc = start(script)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "removing stale temporary" in out or seen_temporaries == 0
    assert (tmp_path / "run" / "final_model" / "config.json").is_file()
    assert [s for s, _ in list_checkpoints(ckpt_dir)] == [24]
    assert not [p for p in ckpt_dir.iterdir() if p.name.startswith(TMP_PREFIX) and p.is_dir()]


def _model_like_the_run(resolved):
    from argonne_kit.data.tokenizer import load_tokenizer

    tokenizer, _ = load_tokenizer(None)
    return build_model(resolved.recipe.model, len(tokenizer))
