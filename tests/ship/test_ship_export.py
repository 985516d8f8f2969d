"""`argonne-kit export`: a publishable directory (shards, index, dtype, ids, tokenizer, recipe,
model card from the run's metrics, loss plot), written by the same code as a run's final_model/."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from argonne_kit.cli import main
from argonne_kit.release.audit import Release, meta_model, output_embedding_key, stored_tensors
from argonne_kit.train.metrics import read_metrics


def weights(directory: Path) -> dict[str, torch.Tensor]:
    state = {}
    for file in directory.glob("*.safetensors"):
        state.update(load_file(str(file)))
    return state


def test_export_writes_sharded_bf16_release_with_card(tiny_run, tiny_export):
    out, final = tiny_export, tiny_run / "final_model"
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    assert {dtype for _shape, dtype in stored_tensors(out).values()} == {"BF16"}
    ours, theirs = weights(out), weights(final)
    head = output_embedding_key(meta_model(Release.read(out)))
    assert ours.keys() == theirs.keys() and head not in ours  # the tied head is stored once
    for key, value in theirs.items():
        assert torch.equal(ours[key], value.to(torch.bfloat16)), key

    config = json.loads((out / "config.json").read_text())
    generation = json.loads((out / "generation_config.json").read_text())
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    assert config["dtype"] == "bfloat16" and config["vocab_size"] == len(tokenizer)
    assert config["eos_token_id"] == generation["eos_token_id"] == tokenizer.eos_token_id
    assert config["pad_token_id"] == generation["pad_token_id"] is not None
    assert (out / "chat_template.jinja").read_text() == (final / "chat_template.jinja").read_text()
    assert (out / "resolved_recipe.toml").read_text() == (tiny_run / "resolved_recipe.toml").read_text()

    card = (out / "README.md").read_text()
    train = [r for r in read_metrics(tiny_run) if "loss" in r]
    for row in (
        "| Layers | 2 transformer blocks |",
        "| Hidden size | 64 |",
        "| Attention heads | 4 query / 2 key-value (GQA) |",
        f"| Vocabulary size | {len(tokenizer):,} (embedded:quickstart) |",
        "| Optimizer steps | 2 |",
        "| Tokens processed | 4,096 |",
        "| Tokens per step | 2,048 (8 rows × 128 tokens × 1 ranks × 2 accumulation) |",
        f"| Final train loss | {train[-1]['loss']:.4f} (step 2) |",
        "| Precision | fp32 |",
        "| Stage | pretraining (causal LM) |",
        "![training loss and learning rate](loss.png)",
    ):
        assert row in card, row
    assert "wsd, peak 0.003" in card and 'from_pretrained("tiny-release"' in card
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_final_model_is_written_by_the_export_code(tiny_run):
    final = tiny_run / "final_model"
    assert {p.name for p in final.iterdir()} >= {
        "README.md",
        "loss.png",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "resolved_recipe.toml",
    }
    card = (final / "README.md").read_text()
    assert card.startswith("---\n") and "# tiny\n" in card and "| Optimizer steps | 2 |" in card
    assert json.loads((final / "config.json").read_text())["dtype"] == "float32"


def test_export_refuses_bad_arguments(tiny_run, tmp_path, capsys):
    assert main(["export", str(tiny_run), "--out", str(tmp_path / "x"), "--max-shard-size", "lots"]) == 2
    assert "--max-shard-size 'lots': expected a size like 5GB" in capsys.readouterr().err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["export", str(tiny_run), "--out", str(tmp_path / "busy")]) == 2
    assert "is not an earlier export" in capsys.readouterr().err
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_a_chat_stage_releases_with_the_chat_eos(tiny_export):
    from transformers import AutoTokenizer

    from argonne_kit.probe import chat_eos_token_id
    from argonne_kit.recipe.diff import resolve_any
    from argonne_kit.train.export import release_eos_token_id

    recipes = Path(__file__).resolve().parents[2] / "recipes"
    tokenizer = AutoTokenizer.from_pretrained(tiny_export)
    chat_eos = release_eos_token_id(resolve_any(recipes / "quickstart_sft.toml"), tokenizer)
    assert chat_eos == chat_eos_token_id(tokenizer) != tokenizer.eos_token_id
    assert release_eos_token_id(resolve_any(recipes / "quickstart.toml"), tokenizer) is None


def test_export_of_an_earlier_checkpoint_describes_training_up_to_it(tiny_run, tmp_path):
    out = tmp_path / "step1"
    assert main(["export", str(tiny_run), "--checkpoint", "1", "--out", str(out), "--dtype", "fp32"]) == 0
    card = (out / "README.md").read_text()
    first = next(r for r in read_metrics(tiny_run) if "loss" in r)
    assert "| Optimizer steps | 1 |" in card and f"| Final train loss | {first['loss']:.4f} (step 1) |" in card
    assert "Final validation loss" not in card  # validation ran at step 2 only
    from argonne_kit.model_source import resolve_model_source

    step1 = resolve_model_source(str(tiny_run), "1").load_model()
    exported = weights(out)
    assert all(torch.equal(exported[k], v) for k, v in step1.state_dict().items() if k in exported)
