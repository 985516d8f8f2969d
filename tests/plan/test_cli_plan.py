"""``argonne-kit plan`` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

from argonne_kit.cli import main

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_plan_prints_the_published_3_0_numbers(capsys, tmp_path):
    code = main(
        [
            "plan",
            str(RECIPES / "argonne3_pretrain.toml"),
            "--gpu",
            "h200",
            "--gpus",
            "3",
            "--tokens-per-s",
            "46000",
            "--data-tokens",
            "20839021454",
            "--lr-plot",
            str(tmp_path / "lr.png"),
            "--json",
            str(tmp_path / "plan.json"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "2,882,162,688" in out and "18.20 GFLOP" in out and "MFU 28.2%" in out
    assert "DDP gradient buckets" in out and "predicted peak" in out
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"
    data = json.loads((tmp_path / "plan.json").read_text())
    assert data["parameters"]["total"] == 2_882_162_688 and data["memory"]["verdict"] in ("fits", "tight")


def test_plan_quickstart_warns_about_unused_memory(capsys):
    assert main(["plan", str(RECIPES / "quickstart.toml"), "--gpu", "a100-80"]) == 0
    out = capsys.readouterr().out
    assert "micro_batch_size up to" in out and "phase                             100 steps" in out


def test_plan_refuses_a_recipe_that_does_not_fit(capsys):
    assert (
        main(
            [
                "plan",
                str(RECIPES / "argonne3_pretrain.toml"),
                "train.activation_checkpointing=false",
                "--gpu",
                "a100-80",
                "--data-tokens",
                "1000000000",
            ]
        )
        == 0
    )
    assert "does not fit" in capsys.readouterr().out


def test_plan_bad_flag_is_one_line_exit_2(capsys):
    assert main(["plan", str(RECIPES / "quickstart.toml"), "--mfu", "1.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("argonne-kit: error: --mfu") and err.count("\n") == 1


def test_plan_refuses_several_gpus_for_a_single_process_recipe(capsys):
    assert main(["plan", str(RECIPES / "quickstart.toml"), "--gpus", "2"]) == 2
    assert 'parallel.kind = "single" runs one process' in capsys.readouterr().err
