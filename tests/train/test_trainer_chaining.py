"""Stage chaining with [init] (D-12): sources, what carries over, counters, fresh schedules."""

import json

import pytest
import torch
from train_fixtures import run_cli, write_recipe

from argonne_kit.errors import RecipeError
from argonne_kit.train.checkpoint import CHECKPOINTS_DIR


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def train_records(run_dir):
    return [r for r in records(run_dir) if "loss" in r]


def first_state(run_dir, step):
    return torch.load(run_dir / CHECKPOINTS_DIR / f"step_{step:08d}" / "state.pt", weights_only=True)


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stage1")
    assert run_cli(write_recipe(tmp, run_dir=tmp / "run")) == 0
    return tmp / "run"


def test_new_phase_from_a_run_dir_carries_weights_and_counters_with_a_fresh_schedule(tmp_path, stage1):
    recipe = write_recipe(
        tmp_path, f'[init]\nfrom = "{stage1.as_posix()}"\ncarry = "weights"\n[checkpoint]\ninterval_steps = 100\n'
    )
    assert run_cli(recipe) == 0
    stage2 = train_records(tmp_path / "run")
    first = stage2[0]
    assert first["step"] == 9 and first["phase_step"] == 1  # cumulative step, phase-local schedule
    assert first["tokens"] == 9 * 128
    assert first["lr"] == pytest.approx(3e-3 / 2)  # warmup restarts (D-12)
    assert first["loss"] < train_records(stage1)[0]["loss"] - 1.0  # trained weights, not a fresh init
    assert [s["step"] for s in stage2][-1] == 16


def test_carry_all_continues_schedule_and_data_from_a_checkpoint(tmp_path, stage1):
    ckpt = stage1 / CHECKPOINTS_DIR / "step_00000004"
    if not ckpt.exists():  # keep_last = 2 keeps steps 4 and 8
        pytest.skip("stage-1 retention removed step 4")
    recipe = write_recipe(tmp_path, f'[init]\nfrom = "{ckpt.as_posix()}"\ncarry = "all"\n')
    assert run_cli(recipe) == 0
    got = {r["step"]: r["loss"] for r in train_records(tmp_path / "run")}
    want = {r["step"]: r["loss"] for r in train_records(stage1)}
    assert sorted(got) == [5, 6, 7, 8]
    assert all(got[s] == want[s] for s in got)  # the continuation is the original run's


def test_weights_from_a_hugging_face_export(tmp_path, stage1):
    recipe = write_recipe(
        tmp_path,
        f'[init]\nfrom = "{(stage1 / "final_model").as_posix()}"\n'
        '[train]\nseq_len = 32\nmicro_batch_size = 4\nmax_steps = 1\nprecision = "fp32"\n'
        'device = "cpu"\nlog_every = 1\n'
        '[schedule]\nkind = "constant"\n',
    )
    assert run_cli(recipe) == 0
    assert train_records(tmp_path / "run")[0]["loss"] < train_records(stage1)[0]["loss"] - 1.0


def test_optimizer_cannot_carry_from_a_hugging_face_export(tmp_path, stage1):
    recipe = write_recipe(
        tmp_path, f'[init]\nfrom = "{(stage1 / "final_model").as_posix()}"\ncarry = "weights+optimizer"\n'
    )
    assert run_cli(recipe) == 2
    assert not (tmp_path / "run" / CHECKPOINTS_DIR).exists()


def test_original_training_checkpoint(tmp_path, stage1):
    """An original checkpoint_step_<N>.pt (original.md §3.2 keys, DDP+compile prefixes): weights load
    by name and the cumulative counters continue from its global_step/tokens_processed."""
    model = first_state(stage1, 8)["model"]
    original = {
        "global_step": 100,
        "tokens_processed": 1_000_000,
        "loss": 1.0,
        "data_position": 0,
        "model_state_dict": {f"module._orig_mod.{k}": v for k, v in model.items()},
    }
    path = tmp_path / "checkpoint_step_100.pt"
    torch.save(original, path)
    recipe = write_recipe(tmp_path, f'[init]\nfrom = "{path.as_posix()}"\n[checkpoint]\ninterval_steps = 100\n')
    assert run_cli(recipe) == 0
    first = train_records(tmp_path / "run")[0]
    assert first["step"] == 101 and first["tokens"] == 1_000_000 + 128
    assert first["loss"] < train_records(stage1)[0]["loss"] - 1.0


def test_missing_init_source_is_a_recipe_error(tmp_path):
    from argonne_kit.train.init_from import locate_init_source

    with pytest.raises(RecipeError, match="init.from: 'nowhere' not found"):
        locate_init_source("nowhere", tmp_path)
