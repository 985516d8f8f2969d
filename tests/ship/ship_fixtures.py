"""Constants and helpers of the release tests (imported by name: every test directory has its own
``conftest``, so tests import shared values from here)."""

from __future__ import annotations

from pathlib import Path

QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.toml"
#: Overrides that make the quickstart tiny: 2 optimizer steps of 2,048 tokens, 2 blocks of width 64.
TINY = [
    "model.hidden_size=64",
    "model.num_hidden_layers=2",
    "model.num_attention_heads=4",
    "model.num_key_value_heads=2",
    "model.intermediate_size=128",
    "train.max_tokens=4096",
    "train.val_every=2",
    "train.val_batches=1",
    "train.log_every=1",
    "checkpoint.interval_steps=1",
    "schedule.warmup_steps=1",
    "schedule.cooldown_frac=0.5",
    "sample.enabled=false",
]


#: 2 shards for the tiny model in bf16 (~274 kB of weights).
SHARD = "150KB"
