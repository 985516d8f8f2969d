"""`argonne-kit push` against a Hub served on 127.0.0.1: the real huggingface_hub upload code
(create repo, preupload, LFS batch + upload, ndjson commit), the audit gate and --dry-run."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from argonne_kit.cli import main
from argonne_kit.release.hub import release_files


@pytest.fixture(autouse=True)
def no_clean_load(monkeypatch):
    """The clean-process load is tested in test_ship_audit and the end-to-end test; here every
    push would pay seconds for it."""
    monkeypatch.setattr("argonne_kit.release.audit.check_clean_load", lambda _d: [])


def arrived(hub, repo_id: str, revision: str = "main") -> dict[str, str]:
    _sha, files = hub.state.files(repo_id, revision)
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def local(directory) -> dict[str, str]:
    return {name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name, _s in release_files(directory)}


def test_dry_run_lists_files_and_sends_nothing(tiny_export, hub, capsys):
    assert main(["push", str(tiny_export), "argonne/tiny", "--dry-run", "--force"]) == 0
    out = capsys.readouterr().out
    for name, size in release_files(tiny_export):
        assert f"{size:>14,}  {name}" in out
    assert f"total: {len(release_files(tiny_export))} files in 1 commit(s) to argonne/tiny (dry run" in out
    assert hub.state.log == []


def test_a_failing_release_is_refused_unless_forced(tiny_export, hub, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_export, broken)
    config = (broken / "config.json").read_text()
    (broken / "config.json").write_text(config.replace('"hidden_size": 64', '"hidden_size": 64, "n_embd": 64'))
    assert main(["push", str(broken), "argonne/tiny"]) == 1
    captured = capsys.readouterr()
    assert f"{broken}: aliases: config.json has the legacy alias 'n_embd'" in captured.out
    assert "fails the audit" in captured.err and hub.state.log == []
    assert main(["push", str(broken), "argonne/tiny", "--force", "--commit-message", "forced"]) == 0
    assert arrived(hub, "argonne/tiny") == local(broken)
    assert hub.state.commit_messages == ["forced"]


def test_push_uploads_every_file_through_lfs_and_commits(tiny_export, hub, monkeypatch, capsys):
    monkeypatch.setattr("argonne_kit.release.hub.COMMIT_BYTES", 200_000)  # several commits for a "large" folder
    assert main(["push", str(tiny_export), "argonne/tiny", "--revision", "dev", "--private", "--force"]) == 0
    assert arrived(hub, "argonne/tiny", "dev") == local(tiny_export)
    assert arrived(hub, "argonne/tiny", "main") == {}  # only the branch got the files
    assert hub.state.repos["argonne/tiny"]["private"] is True
    commits = hub.state.commit_messages
    assert len(commits) >= 2 and commits[0] == f"Upload {tiny_export.name} with argonne-kit (1/{len(commits)})"
    methods = [(m, p) for m, p, _auth in hub.state.log]
    assert ("POST", "/argonne/tiny.git/info/lfs/objects/batch") in methods  # safetensors went through LFS
    assert sum(m == "PUT" for m, _p in methods) == sum(
        n.endswith((".safetensors", ".png")) for n, _s in release_files(tiny_export)
    )
    assert all(auth == "Bearer hf_test_token" for m, p, auth in hub.state.log if p.startswith("/api/repos"))
    assert capsys.readouterr().out.count("committed http://127.0.0.1") == len(commits)
    assert main(["push", str(tiny_export), "bad-repo-id", "--force"]) == 2


def test_a_hub_refusal_is_one_error_line(tiny_export, hub, capsys):
    hub.state.read_only = True
    assert main(["push", str(tiny_export), "argonne/tiny", "--force"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("argonne-kit: error: push argonne/tiny: ")
    assert "403" in err[0] and hub.state.repos == {}
