"""One tiny quickstart-shaped run shared by the release tests: the real quickstart recipe (its
embedded corpus and tokenizer with a chat template), shrunk to a few steps, with checkpoints at
steps 1 and 2 and its ``final_model/``."""

from __future__ import annotations

from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.toml"
#: Overrides that make the quickstart tiny: 2 optimizer steps of 2,048 tokens, 2 blocks of width 64.
TINY = ["model.hidden_size=64", "model.num_hidden_layers=2", "model.num_attention_heads=4",
        "model.num_key_value_heads=2", "model.intermediate_size=128", "train.max_tokens=4096",
        "train.val_every=2", "train.val_batches=1", "train.log_every=1", "checkpoint.interval_steps=1",
        "schedule.warmup_steps=1", "schedule.cooldown_frac=0.5", "sample.enabled=false"]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    from argonne_kit.cli import main

    run = tmp_path_factory.mktemp("ship") / "tiny"
    assert main(["run", str(QUICKSTART), f"run.dir={run}", *TINY]) == 0
    return run
