"""The README quickstart, shortened: the real recipe, embedded corpus (through the preprocess
path into bin shards), embedded tokenizer, real model, single strategy — train, validate,
checkpoint, export; the export loads with AutoModelForCausalLM and generates."""

import json
import tomllib
from pathlib import Path

import torch

from argonne_kit.cli import main
from argonne_kit.recipe.diff import RESOLVED_RECIPE_FILE
from argonne_kit.train.checkpoint import CHECKPOINTS_DIR, list_checkpoints

QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.toml"


def test_quickstart_trains_validates_checkpoints_and_exports(tmp_path, capsys):
    run = tmp_path / "qs"
    code = main(
        [
            "run",
            str(QUICKSTART),
            f"run.dir={run}",
            "train.max_tokens=8192",
            "train.val_every=2",
            "train.val_batches=2",
            "train.log_every=1",
            "checkpoint.interval_steps=2",
            "sample.max_new_tokens=6",
            "schedule.warmup_steps=1",
            "schedule.cooldown_frac=0.5",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "attention (fp32, cpu): layers 0-3:" in out
    assert "sample: Once upon a time" in out

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "loss" in r]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert {"step", "loss", "lr", "tokens", "tokens_per_s", "grad_norm"} <= set(train[0])
    assert train[-1]["tokens"] == 4 * 2048
    assert [r["step"] for r in records if "val_loss" in r] == [2, 4]
    assert [s for s, _ in list_checkpoints(run / CHECKPOINTS_DIR)] == [2, 4]

    meta = tomllib.loads((run / RESOLVED_RECIPE_FILE).read_text())["meta"]
    assert meta["tokenizer_sha256"] and meta["torch"] and "argonne-kit" in " ".join(meta["plugins"].values())

    from transformers import AutoModelForCausalLM, AutoTokenizer

    import argonne_kit  # noqa: F401  (registers the Auto classes)

    export = run / "final_model"
    model = AutoModelForCausalLM.from_pretrained(export)
    tokenizer = AutoTokenizer.from_pretrained(export)
    assert (export / RESOLVED_RECIPE_FILE).is_file()
    state = torch.load(run / CHECKPOINTS_DIR / "step_00000004" / "state.pt", weights_only=True)["model"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    ids = tokenizer("Once upon a time", return_tensors="pt")["input_ids"]
    generated = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=5, do_sample=False)
    assert generated.shape[1] > ids.shape[1]
    assert main(["diff", str(run / CHECKPOINTS_DIR / "step_00000004"), str(export)]) == 0

    capsys.readouterr()
    assert main(["generate", str(run), "--prompt", "Once upon", "--max-new-tokens", "4", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.startswith("Once upon")
    assert main(["plot", str(run)]) == 0
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_a_clear_error(tmp_path, monkeypatch, capsys):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0, "lr": 0.1}\n')
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    assert main(["plot", str(tmp_path)]) == 2
    assert "plot needs matplotlib" in capsys.readouterr().err
