"""A tiny quickstart run shared by the eval tests (trained once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from argonne_kit.cli import main

RECIPES = Path(__file__).resolve().parents[2] / "recipes"

TINY = [
    "model.hidden_size=64",
    "model.num_hidden_layers=2",
    "model.num_attention_heads=2",
    "model.num_key_value_heads=1",
    "model.intermediate_size=128",
    "train.max_tokens=6144",
    "train.val_batches=2",
    "train.val_every=1000",
    "train.log_every=1",
    "checkpoint.interval_steps=1000",
    "sample.max_new_tokens=4",
    "schedule.warmup_steps=1",
    "schedule.cooldown_frac=0.5",
]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("eval") / "run"
    assert main(["run", str(RECIPES / "quickstart.toml"), *TINY, f"run.dir={run_dir}"]) == 0
    return run_dir
