"""Untrusted pickles never run: every ``torch.load`` is ``weights_only=True`` with a small
allow-list, and each planted payload (trainer state, extras, model state, an original ``.pt``,
a ``pytorch_model.bin``) is refused with one line while the marker it would create never appears."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from hardening_fixtures import CHECKPOINT_BODY, Plant, one_error_line
from train_fixtures import run_cli, write_recipe

from argonne_kit.cli import main
from argonne_kit.errors import CheckpointError
from argonne_kit.safe_io import safe_torch_load, sha256_file
from argonne_kit.train.checkpoint import CHECKPOINTS_DIR, MANIFEST_FILE

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("step_00000004", "step_00000008")


def test_no_torch_load_without_weights_only_true():
    """Every ``torch.load(`` call in the package and the plugins passes ``weights_only=True``;
    the one exception is the explicit ``convert-checkpoint --trust-pickle`` command."""
    offenders = []
    for file in sorted([*ROOT.joinpath("argonne_kit").rglob("*.py"), *ROOT.joinpath("plugins").rglob("*.py")]):
        text = file.read_text()
        for match in re.finditer(r"torch\.load\(", text):
            depth, end = 0, match.end() - 1
            for end in range(match.end() - 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            call = text[match.start() : end + 1]
            if "weights_only=True" not in call and file.name != "convert_checkpoint.py":
                offenders.append(f"{file.relative_to(ROOT)}: {call}")
    assert not offenders, offenders


def plant(checkpoint: Path, name: str, payload, *, keep_manifest_valid: bool = True) -> None:
    """Replace ``checkpoint/name`` by a pickle of ``payload``; by default the manifest's size and
    checksum are updated too, so that the unpickler (not the checksum) is what refuses it."""
    torch.save(payload, checkpoint / name)
    if keep_manifest_valid:
        manifest = json.loads((checkpoint / MANIFEST_FILE).read_text())
        manifest["files"][name] = {"size": (checkpoint / name).stat().st_size, "sha256": sha256_file(checkpoint / name)}
        (checkpoint / MANIFEST_FILE).write_text(json.dumps(manifest))


def test_the_safe_loader_refuses_a_payload_and_keeps_numpy_rng_states(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"global_step": 3, "x": Plant(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"evil.pt: refused to load .*posix.mkdir.*--trust-pickle"):
        safe_torch_load(tmp_path / "evil.pt")
    assert not marker.exists()
    import numpy as np

    state = {"rng": np.random.get_state(), "t": torch.arange(3)}
    torch.save(state, tmp_path / "ok.pt")
    back = safe_torch_load(tmp_path / "ok.pt")
    assert np.array_equal(back["rng"][1], state["rng"][1]) and torch.equal(back["t"], state["t"])


@pytest.mark.parametrize("target", ["trainer_state_rank0.pt", "extras.pt", "state.pt"])
@pytest.mark.parametrize("how", ["resume_auto", "resume_path", "init_run_dir", "init_checkpoint"])
def test_a_planted_pickle_in_a_checkpoint_never_runs(run_copy, tmp_path, capsys, target, how):
    marker = tmp_path / "ran"
    for step in STEPS:
        plant(run_copy / CHECKPOINTS_DIR / step, target, {"global_step": 8, "model": Plant(marker)})
    shutil.rmtree(run_copy / "final_model")  # otherwise init.from a run directory falls back to it
    newest = run_copy / CHECKPOINTS_DIR / STEPS[-1]
    body = CHECKPOINT_BODY
    if how == "resume_auto":
        recipe = write_recipe(tmp_path, body, run_dir=run_copy)
    elif how == "resume_path":
        recipe = write_recipe(
            tmp_path,
            body + f'[run]\ndir = "{(tmp_path / "new").as_posix()}"\nresume = "{newest.as_posix()}"\n',
            run_dir=tmp_path / "new",
        )
    else:
        source = run_copy if how == "init_run_dir" else newest
        recipe = write_recipe(tmp_path, body + f'[init]\nfrom = "{source.as_posix()}"\n', run_dir=tmp_path / "new")
    saved = run_copy / CHECKPOINTS_DIR
    before = {p: p.read_bytes() for p in saved.rglob("*") if p.is_file()}
    assert run_cli(recipe) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "refused to load" in line or "none verifies" in line, line
    assert not marker.exists()
    assert {p: p.read_bytes() for p in saved.rglob("*") if p.is_file()} == before


def _original_checkpoint(run: Path) -> dict:
    model = torch.load(run / CHECKPOINTS_DIR / STEPS[-1] / "state.pt", weights_only=True)["model"]
    return {"global_step": 100, "tokens_processed": 1000, "model_state_dict": dict(model)}


def test_an_original_pt_needing_more_than_the_allow_list_is_refused_then_converted_deliberately(
    trained_run, tmp_path, capsys
):
    marker = tmp_path / "ran"
    evil = tmp_path / "checkpoint_step_100.pt"
    torch.save({**_original_checkpoint(trained_run), "config": Plant(marker)}, evil)
    recipe = write_recipe(tmp_path, CHECKPOINT_BODY + f'[init]\nfrom = "{evil.as_posix()}"\n')
    assert run_cli(recipe) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "refused to load training checkpoint" in line and "convert-checkpoint --trust-pickle" in line
    assert not marker.exists()

    # a trusted file with a benign foreign object: refused the same way, converted on request
    from datetime import date

    trusted = tmp_path / "trusted.pt"
    torch.save({**_original_checkpoint(trained_run), "saved_on": date(2024, 5, 1)}, trusted)
    converted = tmp_path / "converted.pt"
    assert main(["convert-checkpoint", str(trusted), str(converted)]) == 2
    assert "--trust-pickle" in one_error_line(capsys.readouterr().err) and not converted.exists()
    assert main(["convert-checkpoint", "--trust-pickle", str(trusted), str(converted)]) == 0
    assert "dropped saved_on (datetime.date)" in capsys.readouterr().out
    blob = safe_torch_load(converted)
    assert blob["global_step"] == 100 and "saved_on" not in blob
    recipe = write_recipe(
        tmp_path,
        CHECKPOINT_BODY + f'[init]\nfrom = "{converted.as_posix()}"\n',
        name="ok.toml",
        run_dir=tmp_path / "run2",
    )
    assert run_cli(recipe) == 0
    first = json.loads((tmp_path / "run2" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["step"] == 101


@pytest.mark.parametrize("command", ["generate", "chat"])
def test_generate_and_chat_refuse_a_malicious_pytorch_model_bin_in_one_line(trained_run, tmp_path, capsys, command):
    marker = tmp_path / "ran"
    model_dir = tmp_path / "model"
    shutil.copytree(trained_run / "final_model", model_dir)
    (model_dir / "model.safetensors").unlink()
    torch.save({"lm_head.weight": Plant(marker)}, model_dir / "pytorch_model.bin")
    assert main([command, str(model_dir), "--prompt", "hi", "--max-new-tokens", "2"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(model_dir) in line and "cannot load the model" in line
    assert not marker.exists()


def test_a_model_with_custom_code_is_refused_without_a_prompt(trained_run, tmp_path, capsys, monkeypatch):
    model_dir = tmp_path / "model"
    shutil.copytree(trained_run / "final_model", model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (model_dir / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "ran"
    (model_dir / "modeling_evil.py").write_text(f"import os\nos.mkdir({str(marker)!r})\n")
    monkeypatch.setattr("builtins.input", lambda *_a: pytest.fail("interactive prompt"))
    assert main(["generate", str(model_dir), "--prompt", "hi", "--max-new-tokens", "2"]) in (0, 2)
    capsys.readouterr()
    assert not marker.exists()
