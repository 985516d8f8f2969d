"""The model-source resolver: every form names the same weights, and `generate` gives the same
greedy text from each; a name that fits no form says which forms were tried."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from argonne_kit.cli import main
from argonne_kit.errors import CheckpointError, RecipeError
from argonne_kit.model_source import resolve_model_source

GREEDY = ["--prompt", "Once upon", "--max-new-tokens", "6", "--temperature", "0"]


def fill_hub_cache(cache: Path, repo_id: str, files_from: Path, commit: str = "a" * 40) -> Path:
    """A Hugging Face cache entry for ``repo_id`` at ``commit`` (``refs/main`` → snapshot), as
    huggingface_hub lays it out."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(files_from, repo / "snapshots" / commit)
    return repo / "snapshots" / commit


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def original_pt(tiny_run: Path, tmp_path: Path) -> Path:
    """An original-style ``checkpoint_step_2.pt`` of the run's final weights, wrapper prefixes
    included, with the release's config.json and tokenizer beside it."""
    from safetensors.torch import load_file

    final = tiny_run / "final_model"
    state = {}
    for file in final.glob("*.safetensors"):
        state.update(load_file(str(file)))
    blob = {
        "model_state_dict": {f"module._orig_mod.{k}": v for k, v in state.items()},
        "global_step": 2,
        "tokens_processed": 4096,
    }
    folder = tmp_path / "original"
    folder.mkdir()
    torch.save(blob, folder / "checkpoint_step_2.pt")
    return folder / "checkpoint_step_2.pt"


def test_every_form_resolves_and_generates_the_same_text(tiny_run, tmp_path, offline_cache, capsys):
    final = tiny_run / "final_model"
    step2 = tiny_run / "checkpoints" / "step_00000002"
    pt = original_pt(tiny_run, tmp_path)
    fill_hub_cache(offline_cache, "argonne/tiny", final)
    forms = {
        "run": ([str(tiny_run)], "run", final),
        "export": ([str(final)], "export", final),
        "latest": ([str(tiny_run), "--checkpoint", "latest"], "checkpoint", step2),
        "step": ([str(tiny_run), "--checkpoint", "2"], "checkpoint", step2),
        "checkpoint": ([str(step2)], "checkpoint", step2),
        "original": ([str(pt), "--config", str(final)], "original", pt),
        "hub": (["argonne/tiny"], "hub", None),
    }
    texts = {}
    for name, (argv, kind, path) in forms.items():
        checkpoint = argv[2] if len(argv) > 1 and argv[1] == "--checkpoint" else None
        companion = argv[2] if len(argv) > 1 and argv[1] == "--config" else None
        source = resolve_model_source(argv[0], checkpoint, companion=companion)
        assert source.kind == kind, name
        if path is not None:
            assert source.path == path, name
        resolved = source.resolved_recipe()  # the run's own recipe, except for an original .pt
        assert (resolved is None) == (kind == "original") and (resolved is None or resolved.recipe.train.seq_len == 128)
        assert main(["generate", *argv, *GREEDY]) == 0, name
        texts[name] = capsys.readouterr().out
    assert texts["run"].startswith("Once upon") and len(texts["run"]) > len("Once upon\n")
    assert set(texts.values()) == {texts["run"]}, texts  # the same weights, whatever the form

    from argonne_kit.train.init_from import locate_init_source

    init = locate_init_source("argonne/tiny", tmp_path)  # [init] from a Hub id, through the same resolver
    assert (init.kind, init.path) == ("hf", resolve_model_source("argonne/tiny").path)

    step1 = resolve_model_source(str(tiny_run), "1")
    assert step1.path.name == "step_00000001" and step1.run_dir == tiny_run
    # step 1's weights are not step 2's: the checkpoint really is what gets loaded
    a, b = step1.load_model(), resolve_model_source(str(step2)).load_model()
    assert not torch.equal(a.get_input_embeddings().weight, b.get_input_embeddings().weight)


def test_run_preferring_checkpoints_and_original_without_config(tiny_run, tmp_path):
    source = resolve_model_source(str(tiny_run), run_prefers="checkpoint")
    assert (source.kind, source.path.name) == ("checkpoint", "step_00000002")
    pt = original_pt(tiny_run, tmp_path)
    with pytest.raises(CheckpointError, match="holds weights only"):
        resolve_model_source(str(pt)).load_model()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):  # a release's files beside it
        shutil.copy(tiny_run / "final_model" / name, pt.parent / name)
    assert resolve_model_source(str(pt)).companion == pt.parent


def test_a_checkpoint_refuses_a_tokenizer_other_than_the_recorded_one(tiny_run, tmp_path):
    copy = tmp_path / "step_00000002"
    shutil.copytree(tiny_run / "checkpoints" / "step_00000002", copy)
    recipe = copy / "resolved_recipe.toml"
    text = recipe.read_text()
    recorded = text.split('tokenizer_sha256 = "')[1][:64]
    recipe.write_text(text.replace(recorded, "0" * 64))
    with pytest.raises(CheckpointError, match="is not the one the run recorded"):
        resolve_model_source(str(copy)).load_tokenizer()


def test_errors_name_the_forms_tried(tiny_run, tmp_path, offline_cache):
    with pytest.raises(CheckpointError) as err:
        resolve_model_source("argonne/not-cached")
    assert "tried local path" in str(err.value) and "Hugging Face Hub repo id (not in the local" in str(err.value)
    with pytest.raises(CheckpointError, match="not of the form org/name"):
        resolve_model_source("nowhere")
    with pytest.raises(CheckpointError, match="not a model directory, run or checkpoint; tried: original"):
        resolve_model_source(str(tmp_path))
    with pytest.raises(CheckpointError, match="no checkpoint of step 7; the run has steps 1, 2"):
        resolve_model_source(str(tiny_run), "7")
    with pytest.raises(CheckpointError, match=r"only an original \.pt takes a config; .* is a run"):
        resolve_model_source(str(tiny_run), companion=str(tiny_run / "final_model"))
    with pytest.raises(CheckpointError, match="needs a run directory"):
        resolve_model_source(str(tiny_run / "final_model"), "latest")
    incomplete = tmp_path / "incomplete"
    shutil.copytree(tiny_run / "checkpoints", incomplete / "checkpoints")
    with pytest.raises(CheckpointError, match=r"pass --checkpoint latest or --checkpoint N \(newest: step 2\)"):
        resolve_model_source(str(incomplete))
    with pytest.raises(RecipeError, match=r"init\.from: 'nowhere' not found"):
        from argonne_kit.train.init_from import locate_init_source

        locate_init_source("nowhere", tmp_path)


def test_diff_recipe_against_a_release_without_recipe(tiny_run, tmp_path, capsys):
    from ship_fixtures import QUICKSTART

    release = tmp_path / "release"
    release.mkdir()
    shutil.copy(tiny_run / "final_model" / "config.json", release / "config.json")
    assert main(["diff", str(QUICKSTART), str(release), "--json"]) == 1
    changes = {c["key"]: (c["a"], c["b"]) for c in json.loads(capsys.readouterr().out)["changes"]}
    assert changes == {
        "hidden_size": (192, 64),
        "num_hidden_layers": (4, 2),
        "num_attention_heads": (6, 4),
        "intermediate_size": (512, 128),
    }
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(
        f'extends = "{QUICKSTART.as_posix()}"\n[model]\nhidden_size = 64\nnum_hidden_layers = 2\n'
        "num_attention_heads = 4\nintermediate_size = 128\n"
    )
    assert main(["diff", str(tiny), str(release)]) == 0
    assert "no differences" in capsys.readouterr().out
