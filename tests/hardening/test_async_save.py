"""``[checkpoint] async_save = true``: the loop waits only for the copy into host memory, the
checkpoints are the same bytes-for-tensors as a synchronous save, and a kill during a background
save never loses the previous checkpoint."""

from __future__ import annotations

import json
import random
import signal
import time

import pytest
import torch
from test_trainer_kill_during_save import (
    LAUNCHER,
    _model_like_the_run,
    start,
    wait_for_a_save_in_progress,
    wait_for_checkpoints,
)
from train_fixtures import run_cli, write_recipe

from argonne_kit.errors import CheckpointError
from argonne_kit.recipe.diff import resolve_any
from argonne_kit.registry import get_registry
from argonne_kit.train.checkpoint import (
    CHECKPOINTS_DIR,
    TMP_PREFIX,
    CheckpointManager,
    list_checkpoints,
)

ASYNC = "[checkpoint]\ninterval_steps = 2\nkeep_last = 10\nasync_save = true\n"
SYNC = "[checkpoint]\ninterval_steps = 2\nkeep_last = 10\n"


def _single_strategy():
    strategy = get_registry().get("parallel", "single").factory(None)
    strategy.setup(device="cpu")
    return strategy


def test_async_checkpoints_equal_synchronous_ones_and_resume_exactly(tmp_path, capsys):
    assert run_cli(write_recipe(tmp_path, SYNC, name="sync.toml", run_dir=tmp_path / "sync")) == 0
    assert run_cli(write_recipe(tmp_path, ASYNC, name="async.toml", run_dir=tmp_path / "async")) == 0
    steps = [s for s, _ in list_checkpoints(tmp_path / "async" / CHECKPOINTS_DIR)]
    assert steps == [2, 4, 6, 8]
    for step in steps:
        a, b = (
            torch.load(tmp_path / run / CHECKPOINTS_DIR / f"step_{step:08d}" / "state.pt", weights_only=True)
            for run in ("sync", "async")
        )
        assert a["model"].keys() == b["model"].keys()
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), step
    losses = [
        [json.loads(line).get("loss") for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        for run in ("sync", "async")
    ]
    assert losses[0] == losses[1]
    assert (tmp_path / "async" / "final_model" / "config.json").is_file()


class SlowWrites:
    """Wraps a strategy so that writing a checkpoint takes ``delay`` seconds."""

    def __init__(self, inner, delay: float):
        self._inner, self.delay = inner, delay

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def save(self, state, path):
        time.sleep(self.delay)
        self._inner.save(state, path)


def test_the_loop_stalls_only_for_the_copy(tmp_path):
    strategy = SlowWrites(_single_strategy(), delay=1.0)
    model = torch.nn.Linear(64, 64)
    optimizer = torch.optim.AdamW(model.parameters())
    state = {"global_step": 3, "rng": {"torch": torch.get_rng_state()}}
    manager = CheckpointManager(tmp_path, strategy, log=lambda _m: None, async_save=True)
    started = time.monotonic()
    path = manager.save(model, optimizer, 3, 30, state, "x = 1\n")
    stalled = time.monotonic() - started
    with torch.no_grad():  # the live model changes while the write is in flight
        model.weight.add_(1.0)
    assert stalled < 0.5 and not path.exists()
    assert manager.wait() and path.is_dir()
    saved = torch.load(path / "state.pt", weights_only=True)["model"]["weight"]
    assert torch.equal(saved + 1.0, model.weight.detach())  # the snapshot, not the changed weights


def test_async_save_is_refused_for_several_processes(tmp_path):
    class TwoRanks:
        world_size = 2

    with pytest.raises(CheckpointError, match="async_save: supported for single-process runs only"):
        CheckpointManager(tmp_path, TwoRanks(), async_save=True)


@pytest.mark.slow
def test_sigkill_during_async_saves_never_loses_the_previous_checkpoint(tmp_path):
    recipe = write_recipe(
        tmp_path,
        "[train]\nseq_len = 32\nmicro_batch_size = 4\nmax_steps = 16\n"
        'precision = "fp32"\ndevice = "cpu"\nlog_every = 1\n'
        "[checkpoint]\ninterval_steps = 1\nkeep_last = 1\nasync_save = true\n",
    )
    script = tmp_path / "launch.py"
    from pathlib import Path

    here = Path(__file__).resolve().parent.parent / "train"
    script.write_text(LAUNCHER.format(here=str(here), recipe=str(recipe)))
    ckpt_dir = tmp_path / "run" / CHECKPOINTS_DIR
    resolved = resolve_any(recipe)
    strategy = _single_strategy()
    rng = random.Random(99)
    for attempt in range(2):
        proc = start(script)
        wait_for_checkpoints(ckpt_dir, proc, at_least=1)
        wait_for_a_save_in_progress(ckpt_dir, proc)
        time.sleep(rng.uniform(0.0, 0.03))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        manager = CheckpointManager(tmp_path / "run", strategy, log=lambda _m: None)
        complete = manager.checkpoints()
        assert complete, f"attempt {attempt}: no checkpoint survived"
        latest = manager.latest()
        assert latest == complete[-1][1], f"attempt {attempt}: newest checkpoint unreadable"
        state = manager.load(latest, _model_like_the_run(resolved), None)
        assert state["global_step"] == complete[-1][0]
    proc = start(script)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert [s for s, _ in list_checkpoints(ckpt_dir)] == [16]
    assert not [p for p in ckpt_dir.iterdir() if p.name.startswith(TMP_PREFIX) and p.is_dir()]


def test_a_full_disk_during_a_background_save_is_one_line(tmp_path, capsys, monkeypatch):
    import builtins

    from hardening_fixtures import one_error_line

    from argonne_kit import safe_io

    real_open = builtins.open

    def full_disk_open(file, mode="r", *args, **kwargs):
        if str(file).endswith(f"{TMP_PREFIX}step_00000004/state.pt.tmp"):
            return real_open("/dev/full", mode, *args, **kwargs)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(safe_io, "open", full_disk_open, raising=False)
    assert run_cli(write_recipe(tmp_path, ASYNC)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.endswith("state.pt: No space left on device; previous checkpoint kept")
    checkpoints = tmp_path / "run" / CHECKPOINTS_DIR
    assert [s for s, _ in list_checkpoints(checkpoints)] == [2]
    assert not [p for p in checkpoints.iterdir() if p.name.startswith(TMP_PREFIX)]
