"""Corrupt, missing or rotting checkpoints are loud: per-file checksums catch bit rot, a skipped
checkpoint is reported with its reason, all-corrupt is an error, and a full disk is one line that
keeps the previous checkpoint."""

from __future__ import annotations

import builtins
import json
import os

import torch
from hardening_fixtures import CHECKPOINT_BODY, one_error_line
from train_fixtures import run_cli, write_recipe

from argonne_kit import safe_io
from argonne_kit.train.checkpoint import (
    CHECKPOINTS_DIR,
    TMP_PREFIX,
    list_checkpoints,
    verify_checkpoint,
)

STEP4, STEP8 = "step_00000004", "step_00000008"


def flip_bytes(path, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + count):
        data[i] ^= 0x55
    path.write_bytes(bytes(data))


def metric_steps(run_dir) -> list[int]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in records if "loss" in r]


def test_bit_rot_is_detected_the_checkpoint_skipped_with_its_reason(run_copy, tmp_path, capsys):
    flip_bytes(run_copy / CHECKPOINTS_DIR / STEP8 / "state.pt")
    recipe = write_recipe(tmp_path, CHECKPOINT_BODY, run_dir=run_copy)
    assert run_cli(recipe) == 0
    out = capsys.readouterr().out
    assert f"checkpoint: skipping {STEP8}: " in out and "state.pt: checksum mismatch" in out
    assert f"resume: {run_copy / CHECKPOINTS_DIR / STEP4}" in out
    assert metric_steps(run_copy)[-4:] == [5, 6, 7, 8]
    verify_checkpoint(run_copy / CHECKPOINTS_DIR / STEP8)  # rewritten by the resumed run


def test_init_from_a_rotten_checkpoint_is_refused(run_copy, tmp_path, capsys):
    flip_bytes(run_copy / CHECKPOINTS_DIR / STEP8 / "trainer_state_rank0.pt", count=8)
    recipe = write_recipe(
        tmp_path,
        CHECKPOINT_BODY + f'[init]\nfrom = "{(run_copy / CHECKPOINTS_DIR / STEP8).as_posix()}"\n',
        run_dir=tmp_path / "new",
    )
    assert run_cli(recipe) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "trainer_state_rank0.pt: checksum mismatch" in line


def test_all_checkpoints_corrupt_is_an_error_and_nothing_is_deleted(run_copy, tmp_path, capsys):
    for step in (STEP4, STEP8):
        flip_bytes(run_copy / CHECKPOINTS_DIR / step / "state.pt")
    before = {p: p.read_bytes() for p in (run_copy / CHECKPOINTS_DIR).rglob("*") if p.is_file()}
    recipe = write_recipe(tmp_path, CHECKPOINT_BODY, run_dir=run_copy)
    assert run_cli(recipe) == 2
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert "2 checkpoints exist, none verifies" in line and STEP4 in line and STEP8 in line
    assert f"checkpoint: skipping {STEP8}" in captured.out and f"checkpoint: skipping {STEP4}" in captured.out
    assert {p: p.read_bytes() for p in (run_copy / CHECKPOINTS_DIR).rglob("*") if p.is_file()} == before


def test_a_checkpoint_missing_its_layout_file_falls_back_to_the_previous_one(run_copy, tmp_path, capsys):
    os.remove(run_copy / CHECKPOINTS_DIR / STEP8 / "parallel.json")
    recipe = write_recipe(tmp_path, CHECKPOINT_BODY, run_dir=run_copy)
    assert run_cli(recipe) == 0
    out = capsys.readouterr().out
    assert f"checkpoint: skipping {STEP8}: " in out and "parallel.json: missing" in out
    assert metric_steps(run_copy)[-4:] == [5, 6, 7, 8]


def test_disk_full_during_a_save_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch):
    """The model file of the step-8 save is written to /dev/full: a real ENOSPC from the kernel."""
    real_open = builtins.open

    def full_disk_open(file, mode="r", *args, **kwargs):
        if str(file).endswith(f"{TMP_PREFIX}{STEP8}/state.pt.tmp"):
            return real_open("/dev/full", mode, *args, **kwargs)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(safe_io, "open", full_disk_open, raising=False)
    recipe = write_recipe(tmp_path, CHECKPOINT_BODY)
    assert run_cli(recipe) == 2
    line = one_error_line(capsys.readouterr().err)
    checkpoints = tmp_path / "run" / CHECKPOINTS_DIR
    assert line == (
        f"argonne-kit: error: cannot write {checkpoints / TMP_PREFIX}{STEP8}/state.pt: "
        f"No space left on device; previous checkpoint kept"
    )
    assert [p.name for p in checkpoints.iterdir() if p.name.startswith(TMP_PREFIX)] == []
    assert [p.name for _s, p in list_checkpoints(checkpoints)] == [STEP4]
    verify_checkpoint(checkpoints / STEP4)
    assert (checkpoints / "latest").read_text().strip() == STEP4
    assert not (tmp_path / "run" / "final_model").exists()


def test_manifest_lists_every_file_with_size_and_checksum(trained_run):
    checkpoint = trained_run / CHECKPOINTS_DIR / STEP8
    manifest = json.loads((checkpoint / "checkpoint.json").read_text())
    files = {p.name for p in checkpoint.iterdir()} - {"checkpoint.json"}
    assert set(manifest["files"]) == files
    state = manifest["files"]["state.pt"]
    assert state["size"] == (checkpoint / "state.pt").stat().st_size
    assert state["sha256"] == safe_io.sha256_file(checkpoint / "state.pt")
    assert torch.load(checkpoint / "state.pt", weights_only=True)["model"]


def test_torchs_opaque_write_error_on_a_nearly_full_disk_is_a_full_disk(tmp_path, monkeypatch):
    """torch's zip writer (torch.save to a path, DCP shards) reports ENOSPC only as an
    ``inline_container`` enforce failure; on a nearly full file system it becomes the one line."""
    import shutil as real_shutil

    import pytest
    import torch.distributed.checkpoint as dcp

    from argonne_kit.safe_io import StorageError, is_disk_full
    from argonne_plugins.parallel import checkpoint

    opaque = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    usage = real_shutil.disk_usage(tmp_path)
    monkeypatch.setattr(safe_io.shutil, "disk_usage", lambda _p: usage._replace(free=4096))
    assert is_disk_full(opaque, tmp_path) and not is_disk_full(opaque)
    assert not is_disk_full(RuntimeError("shape mismatch"), tmp_path)

    def failing_save(*_args, **_kwargs):
        raise opaque

    monkeypatch.setattr(dcp, "save", failing_save)
    with pytest.raises(StorageError, match=f"cannot write {tmp_path / 'dcp'}: No space left on device"):
        checkpoint.save(
            checkpoint.native_state(torch.nn.Linear(4, 4), None),
            str(tmp_path / "dcp"),
            fmt="dcp",
            strategy="fsdp",
            mesh={"dp": 1},
        )
    monkeypatch.setattr(safe_io.shutil, "disk_usage", lambda _p: usage._replace(free=10**12))
    assert not is_disk_full(opaque, tmp_path)
