"""One tiny quickstart-shaped run shared by the release tests: the real quickstart recipe (its
embedded corpus and tokenizer with a chat template), shrunk to a few steps, with checkpoints at
steps 1 and 2 and its ``final_model/``."""

from __future__ import annotations

from pathlib import Path

import pytest
from ship_fixtures import QUICKSTART, SHARD, TINY


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    from argonne_kit.cli import main

    run = tmp_path_factory.mktemp("ship") / "tiny"
    assert main(["run", str(QUICKSTART), f"run.dir={run}", *TINY]) == 0
    return run


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory) -> Path:
    """``argonne-kit export`` of the tiny run: bf16, 2 shards."""
    from argonne_kit.cli import main

    out = tmp_path_factory.mktemp("export") / "tiny-release"
    assert main(["export", str(tiny_run), "--out", str(out), "--dtype", "bf16", "--max-shard-size", SHARD]) == 0
    return out


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
