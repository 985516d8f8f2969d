"""Every stage of every release pipeline trains: ``argonne-kit run recipes/releases/<release>.toml``
runs each stage for 2 optimizer steps on a tiny stand-in.

Overridden per stage: the model's dimensions (a tiny model of the same family and shape rules),
the tokenizer, the data paths and the context (the embedded corpus, chat, preference and CoT
samples), the batch (2 rows, 2 accumulation steps), the length (2 steps, schedule lengths scaled so
the cooldown still happens), the device (CPU, one process: `parallel.kind = "single"`), no
compilation (minutes on CPU), FP8 "on" → "emulate" (CPU), and a shorter sample. Everything else is
the recipe's own: objective, schedule kind, mixture sources and weights, FP8, vocabulary padding,
chunked CE (with a smaller chunk), activation checkpointing, precision, the [init] chaining between
stages (so a padded FP8 checkpoint really feeds the next stage, and the trimmed export the chat
stages).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from argonne_kit.cli import main
from argonne_kit.recipe.api import resolve_recipe
from argonne_kit.recipe.pipeline import load_pipeline

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
PIPELINES = sorted((RECIPES / "releases").glob("argonne*.toml"))
SEQ = 32  # token windows of the pretraining stages
CHAT_SEQ = 256  # the embedded chat / preference / CoT samples fit whole


@pytest.fixture(scope="module")
def assets():
    """The embedded quickstart assets and token shards (the shared cache, as the quickstart
    tests use it) and the embedded tokenizer's length."""
    from argonne_kit.data.embedded import ensure_quickstart_assets, ensure_quickstart_shards
    from argonne_kit.data.tokenizer import load_tokenizer

    found = ensure_quickstart_assets()
    return found, ensure_quickstart_shards("train"), len(load_tokenizer(str(found.tokenizer_dir))[0])


def tiny_overrides(recipe: Path, assets) -> list[str]:
    """The stand-in overrides of one stage recipe (see the module docstring)."""
    found, shards, vocab = assets
    d = resolve_recipe(recipe).to_dict(with_generated=False)
    seq = SEQ if d["data"]["kind"] in ("bin_shards", "mixture") else CHAT_SEQ
    out = [f"tokenizer.path={json.dumps(str(found.tokenizer_dir))}", f"model.vocab_size={vocab}"]
    if d["model"]["kind"] == "argonne":
        out += [
            "model.n_embd=64",
            "model.n_layer=2",
            "model.n_head=2",
            f"model.block_size={CHAT_SEQ}",
        ]  # learned positions: one table size per release
    else:
        out += [
            "model.hidden_size=64",
            "model.num_hidden_layers=2",
            "model.num_attention_heads=2",
            "model.num_key_value_heads=1",
            "model.intermediate_size=128",
            f"model.max_position_embeddings={seq}",
        ]
    data = d["data"]
    if data["kind"] == "mixture":
        sources = ", ".join(
            f'{{name = "{s["name"]}", kind = "bin_shards", weight = {s["weight"]}, path = {json.dumps(str(shards))}}}'
            for s in data["sources"]
        )
        out.append(f"data.sources=[{sources}]")
    elif data["kind"] == "bin_shards":
        out.append(f"data.path={json.dumps(str(shards))}")
    else:
        path = {"ultrachat": found.chat_jsonl, "preference": found.preference_jsonl, "cot": found.cot_jsonl}
        out.append(f"data.path={json.dumps(str(path[data['kind']]))}")
        if data.get("messages_column", "messages") != "messages":
            out.append('data.messages_column="messages"')
    if d["objective"].get("loss_chunk_size"):
        out.append("objective.loss_chunk_size=16")
    schedule = d["schedule"]
    if schedule.get("warmup_steps"):  # a cosine over 2 steps decays only without warmup
        out.append(f"schedule.warmup_steps={0 if schedule['kind'] == 'cosine' else 1}")
    if schedule.get("cooldown_frac"):
        out.append("schedule.cooldown_frac=0.5")
    if schedule.get("cooldown_steps"):
        out.append("schedule.cooldown_steps=1")
    train = d["train"]
    out += [
        f"train.seq_len={seq}",
        "train.micro_batch_size=2",
        f"train.total_batch_tokens={4 * seq}",
        "train.max_steps=2",
        "train.compile=false",
        'train.device="cpu"',
        "train.log_every=1",
        'parallel.kind="single"',
        "run.nproc=1",
        "sample.max_new_tokens=4",
        "eval.probe=false",
    ]
    if train["fp8"] == "on":
        out.append('train.fp8="emulate"')
    return out


def stage_overrides(pipeline: Path, assets) -> list[str]:
    return [f"{stage.index}:{o}" for stage in load_pipeline(pipeline) for o in tiny_overrides(stage.recipe, assets)]


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", PIPELINES, ids=[p.stem for p in PIPELINES])
def test_every_stage_of_the_release_trains_two_steps(pipeline, assets, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # run.dir and [init] from are relative: runs/<stage>
    assert main(["run", str(pipeline), *stage_overrides(pipeline, assets)]) == 0
    fp8_stages = 0
    for stage in load_pipeline(pipeline):
        recipe = resolve_recipe(stage.recipe).recipe
        run_dir = tmp_path / recipe.run.dir
        final = run_dir / "final_model"
        assert (final / "config.json").is_file(), stage.label
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        steps = [r["step"] for r in records if "loss" in r]  # cumulative over the chained stages
        assert len(steps) == 2 and steps[1] == steps[0] + 1, stage.label
        config = json.loads((final / "config.json").read_text())
        assert config["vocab_size"] == assets[2], stage.label  # padded stages export trimmed
        fp8_stages += recipe.train.fp8 == "on"
    out = capsys.readouterr().out
    # every FP8 stage converted the 14 block linears of the stand-in and its tied head
    assert out.count("fp8 (emulate, tensorwise dynamic): converted 15 of 15 linears including lm_head") == fp8_stages
