"""Fixtures of the hardening tests: one tiny trained run (checkpoints at steps 4 and 8, an
exported final model), copied into each test that damages it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "train"))

from hardening_fixtures import CHECKPOINT_BODY
from train_fixtures import register_synthetic_data, run_cli, write_recipe


@pytest.fixture(scope="session", autouse=True)
def synthetic_data_plugin():
    register_synthetic_data()


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A finished 8-step run: checkpoints/step_00000004, step_00000008, final_model/."""
    base = tmp_path_factory.mktemp("trained")
    recipe = write_recipe(base, CHECKPOINT_BODY, run_dir=base / "run")
    assert run_cli(recipe) == 0
    return base / "run"


@pytest.fixture()
def run_copy(trained_run, tmp_path) -> Path:
    """A private copy of :func:`trained_run` to damage."""
    target = tmp_path / "run"
    shutil.copytree(trained_run, target)
    return target
