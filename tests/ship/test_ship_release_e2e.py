"""The whole release path: a tiny quickstart run → export (bf16, 2 shards) → audit → push
--dry-run → push to the local Hub → load by repo id from the cache → generate."""

from __future__ import annotations

import json

from ship_fixtures import SHARD

from argonne_kit.cli import main
from argonne_kit.model_source import resolve_model_source

GREEDY = ["--prompt", "Once upon", "--max-new-tokens", "6", "--temperature", "0"]


def test_quickstart_to_hub_and_back(tiny_run, hub, tmp_path, capsys, monkeypatch):
    release = tmp_path / "argonne-tiny"
    assert main(["export", str(tiny_run), "--out", str(release), "--dtype", "bf16", "--max-shard-size", SHARD]) == 0
    index = json.loads((release / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == 2

    config = json.loads((release / "config.json").read_text())
    assert "auto_map" in config and (release / "modeling_argonne.py").is_file()  # standalone code ships
    capsys.readouterr()
    assert main(["audit", str(release)]) == 0  # includes loading it where argonne_kit cannot be imported
    assert capsys.readouterr().out.splitlines() == [f"{release}: release audit clean"]
    force: list[str] = []

    assert main(["push", str(release), "argonne/tiny", "--dry-run", *force]) == 0
    assert "(dry run: nothing uploaded)" in capsys.readouterr().out and hub.state.log == []
    assert main(["push", str(release), "argonne/tiny", *force]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"committed {hub.endpoint}/argonne/tiny/commit/")
    _sha, files = hub.state.files("argonne/tiny", "main")
    assert {name: data for name, data in files.items()} == {
        p.name: p.read_bytes() for p in release.iterdir() if p.is_file()
    }

    assert main(["generate", str(release), *GREEDY]) == 0
    expected = capsys.readouterr().out
    assert main(["generate", "argonne/tiny", *GREEDY]) == 0  # downloads into the cache
    assert capsys.readouterr().out == expected
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    requests = len(hub.state.log)
    source = resolve_model_source("argonne/tiny")
    assert source.kind == "hub" and source.path.is_relative_to(constants.HF_HUB_CACHE)
    assert main(["generate", "argonne/tiny", *GREEDY]) == 0  # from the cache alone
    assert capsys.readouterr().out == expected and len(hub.state.log) == requests
    assert main(["audit", "argonne/tiny", "--no-load"]) == 0  # a Hub id audits from the cache
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"{source.path}: ")
