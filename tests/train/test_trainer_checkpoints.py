"""Checkpoint manager: exact resume, NaN refusal, retention, early stops (D-8, D-9, D-14, D-23, D-25)."""

import json
import shutil
import signal

import torch
from train_fixtures import run_cli, write_recipe

from argonne_kit.train.checkpoint import CHECKPOINTS_DIR, list_checkpoints, verify_checkpoint
from argonne_kit.train.metrics import read_metrics


def losses(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def model_state(checkpoint_dir):
    return torch.load(checkpoint_dir / "state.pt", map_location="cpu", weights_only=True)["model"]


def test_exact_resume_is_bit_identical(tmp_path):
    """N steps uninterrupted == k steps + resume (fresh model, optimizer, data, RNG) + N−k steps,
    bit for bit on CPU fp32 — with a sample generated at the checkpoint in between."""
    body = "[checkpoint]\ninterval_steps = 4\nkeep_last = 5\n[sample]\nmax_new_tokens = 3\n"
    full = write_recipe(tmp_path, body, run_dir=tmp_path / "full")
    assert run_cli(full) == 0

    resumed_dir = tmp_path / "resumed"
    (resumed_dir / CHECKPOINTS_DIR).mkdir(parents=True)
    shutil.copytree(
        tmp_path / "full" / CHECKPOINTS_DIR / "step_00000004", resumed_dir / CHECKPOINTS_DIR / "step_00000004"
    )
    resumed = write_recipe(tmp_path, body, name="resumed.toml", run_dir=resumed_dir)
    assert run_cli(resumed) == 0

    a, b = losses(tmp_path / "full"), losses(resumed_dir)
    assert sorted(b) == [5, 6, 7, 8]
    assert all(a[s] == b[s] for s in b), (a, b)
    wa = model_state(tmp_path / "full" / CHECKPOINTS_DIR / "step_00000008")
    wb = model_state(resumed_dir / CHECKPOINTS_DIR / "step_00000008")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_nan_weights_refuse_the_save_and_the_export(tmp_path, capsys):
    """A NaN written into a weight after step 4: every later save is refused, step 4 stays
    the newest checkpoint, no final_model, exit status non-zero (D-9)."""
    recipe = write_recipe(
        tmp_path, '[objective]\nkind = "probe_clm"\nnan_at_call = 5\n[checkpoint]\ninterval_steps = 2\nkeep_last = 1\n'
    )
    assert run_cli(recipe, "train.max_failed_steps=100") == 1  # no divergence stop: every gate is reached
    out = capsys.readouterr().out
    assert "REFUSED step 6: non-finite weights" in out
    assert "REFUSED step 8" in out
    run = tmp_path / "run"
    assert [s for s, _ in list_checkpoints(run / CHECKPOINTS_DIR)] == [4]
    assert (run / CHECKPOINTS_DIR / "latest").read_text().strip() == "step_00000004"
    verify_checkpoint(run / CHECKPOINTS_DIR / "step_00000004", expect_step=4)
    assert not (run / "final_model").exists()
    assert not [p for p in (run / CHECKPOINTS_DIR).iterdir() if p.name.startswith(".tmp-step")]


def test_retention_keeps_last_and_milestones_and_logs_each_deletion(tmp_path, capsys):
    recipe = write_recipe(tmp_path, "[checkpoint]\ninterval_steps = 1\nkeep_last = 2\nkeep_every_steps = 3\n")
    assert run_cli(recipe) == 0
    out = capsys.readouterr().out
    run = tmp_path / "run"
    assert [s for s, _ in list_checkpoints(run / CHECKPOINTS_DIR)] == [3, 6, 7, 8]
    deleted = sorted(line.split()[2] for line in out.splitlines() if line.startswith("checkpoint: deleting"))
    assert deleted == ["step_00000001", "step_00000002", "step_00000004", "step_00000005"]
    assert "retention: keep_last=2, keep_every_steps=3" in out


def test_wall_time_saves_and_exits_zero_without_export_then_resume_completes(tmp_path):
    recipe = write_recipe(tmp_path, "[checkpoint]\ninterval_steps = 100\n")
    run = tmp_path / "run"
    assert run_cli(recipe, "run.wall_time_s=0.001", "run.exit_margin_s=0.0") == 0
    assert [s for s, _ in list_checkpoints(run / CHECKPOINTS_DIR)] == [1]
    assert not (run / "final_model").exists()
    assert run_cli(recipe) == 0
    assert sorted(losses(run)) == list(range(1, 9))
    assert (run / "final_model" / "config.json").is_file()


def test_sigusr1_saves_and_exits_zero_without_export(tmp_path, capsys):
    recipe = write_recipe(
        tmp_path, '[objective]\nkind = "probe_clm"\nsignal_at_call = 3\n[checkpoint]\ninterval_steps = 100\n'
    )
    assert run_cli(recipe) == 0
    assert "received SIGUSR1" in capsys.readouterr().out
    run = tmp_path / "run"
    assert [s for s, _ in list_checkpoints(run / CHECKPOINTS_DIR)] == [3]
    assert not (run / "final_model").exists()


def test_sigint_saves_and_exits_130_without_export(tmp_path, capsys):
    """Ctrl-C: the step it arrived in is saved (resumable) and the status is 130, as a shell
    reports an interrupted command; SIGINT's default handler is back afterwards."""
    recipe = write_recipe(
        tmp_path,
        '[objective]\nkind = "probe_clm"\nsignal_at_call = 3\nsignal = "SIGINT"\n[checkpoint]\ninterval_steps = 100\n',
    )
    assert run_cli(recipe) == 130
    assert "received SIGINT" in capsys.readouterr().out
    run = tmp_path / "run"
    assert [s for s, _ in list_checkpoints(run / CHECKPOINTS_DIR)] == [3]
    assert not (run / "final_model").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_divergence_stops_after_consecutive_failed_steps_and_names_the_last_good_checkpoint(tmp_path, capsys):
    """A NaN from step 3 on: the run stops after train.max_failed_steps = 3 failed steps (step 5),
    saves nothing more, names step 2 as the last good checkpoint and exits 1 without export."""
    recipe = write_recipe(
        tmp_path, '[objective]\nkind = "probe_clm"\nnan_at_call = 3\n[checkpoint]\ninterval_steps = 2\nkeep_last = 2\n'
    )
    assert run_cli(recipe) == 1
    out = capsys.readouterr().out
    run = tmp_path / "run"
    assert "run: diverged: stopped at step 5 after 3 consecutive failed steps" in out
    assert f"Last good checkpoint: {run / CHECKPOINTS_DIR / 'step_00000002'}" in out
    assert "REFUSED step 4: non-finite weights" in out and "REFUSED step 6" not in out
    steps = [r["step"] for r in read_metrics(run) if "loss" in r]
    assert steps == [1, 2, 3, 4, 5]
    assert [s for s, _ in list_checkpoints(run / CHECKPOINTS_DIR)] == [2]
    assert not (run / "final_model").exists()
