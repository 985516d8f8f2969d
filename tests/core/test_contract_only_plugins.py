"""Proof that the contracts are the whole interface: a distribution whose components implement
only their contracts (tests/core/contract_plugin: one attention backend, objective, parallel
strategy, data source and schedule), installed the way a user installs a plugin, trains from a
recipe that selects all five."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = Path(__file__).resolve().parent / "contract_plugin"


@pytest.fixture(scope="module")
def contract_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("contract_site")
    source = shutil.copytree(PLUGIN, tmp_path_factory.mktemp("contract_src") / "plugin")  # builds leave files
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return site


@pytest.mark.slow
def test_contract_only_components_of_every_kind_train_from_a_recipe(contract_site, tmp_path):
    run_dir = tmp_path / "run"
    recipe = tmp_path / "contract.toml"
    recipe.write_text(
        textwrap.dedent(f"""
        [model]
        kind = "argonne2"
        hidden_size = 64
        num_hidden_layers = 2
        num_attention_heads = 4
        num_key_value_heads = 2
        intermediate_size = 128
        max_position_embeddings = 64
        [attention]
        kind = "plain"
        [objective]
        kind = "plain_clm"
        [parallel]
        kind = "one_process"
        [data]
        kind = "counting"
        [schedule]
        kind = "halving"
        [optim]
        lr = 3e-3
        [train]
        seq_len = 32
        micro_batch_size = 4
        max_steps = 4
        log_every = 1
        precision = "fp32"
        device = "cpu"
        [sample]
        enabled = false
        [run]
        dir = "{run_dir.as_posix()}"
    """)
    )
    env = {**os.environ, "PYTHONPATH": str(contract_site), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "argonne_kit", "run", str(recipe)], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["lr"] for r in steps] == [3e-3, 3e-3, 1.5e-3, 1.5e-3]  # the plugin's schedule
    assert all(math.isfinite(r["loss"]) for r in steps) and steps[-1]["loss"] < steps[0]["loss"]
    assert "plain" in result.stdout  # the logged attention plan names the plugin's backend
    assert (run_dir / "checkpoints").is_dir() and (run_dir / "final_model" / "config.json").is_file()
