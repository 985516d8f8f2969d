"""One tiny quickstart-shaped run shared by the release tests: the real quickstart recipe (its
embedded corpus and tokenizer with a chat template), shrunk to a few steps, with checkpoints at
steps 1 and 2 and its ``final_model/``."""

from __future__ import annotations

from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    from argonne_kit.cli import main

    run = tmp_path_factory.mktemp("ship") / "tiny"
    assert main(["run", str(QUICKSTART), f"run.dir={run}", *TINY]) == 0
    return run


#: 2 shards for the tiny model in bf16 (~274 kB of weights).
SHARD = "150KB"


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory) -> Path:
    """``argonne-kit export`` of the tiny run: bf16, 2 shards."""
    from argonne_kit.cli import main

    out = tmp_path_factory.mktemp("export") / "tiny-release"
    assert main(["export", str(tiny_run), "--out", str(out), "--dtype", "bf16", "--max-shard-size", SHARD]) == 0
    return out


def ships_auto_map(release: Path) -> bool:
    """Whether the model's save_pretrained wrote ``auto_map`` (and so the standalone code)."""
    import json

    return "auto_map" in json.loads((release / "config.json").read_text())


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A local Hub (see hub_server.py) that huggingface_hub talks to, as with HF_ENDPOINT set; a
    fresh cache; a token in HF_TOKEN, the usual place."""
    from hub_server import HubServer
    from huggingface_hub import constants

    with HubServer() as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.endpoint)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_TOKEN", "hf_test_token")
        yield server
