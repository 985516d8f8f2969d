"""Every release recipe against the published values of recipes/releases/published.toml."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest

from argonne_kit.recipe.api import resolve_recipe
from argonne_kit.recipe.pipeline import load_pipeline

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TABLE = tomllib.loads((RECIPES / "releases" / "published.toml").read_text())
ROWS = TABLE["published"]
RELEASES = TABLE["release"]

#: published key → (section, field) of the resolved recipe
PLAIN = {
    "tokens_per_step": ("train", "total_batch_tokens"),
    "seq_len": ("train", "seq_len"),
    "lr": ("optim", "lr"),
    "schedule": ("schedule", "kind"),
    "warmup_steps": ("schedule", "warmup_steps"),
    "cooldown_steps": ("schedule", "cooldown_steps"),
    "cooldown_frac": ("schedule", "cooldown_frac"),
    "min_lr_ratio": ("schedule", "min_lr_ratio"),
    "rope_theta": ("model", "rope_theta"),
    "grad_clip": ("optim", "grad_clip"),
    "weight_decay": ("optim", "weight_decay"),
    "precision": ("train", "precision"),
    "compile": ("train", "compile"),
    "activation_checkpointing": ("train", "activation_checkpointing"),
    "dropout": ("model", "dropout"),
    "epochs": ("train", "epochs"),
    "beta": ("objective", "beta"),
}
#: documentation keys of a row (not compared)
TEXT = {"release", "stage", "recipe", "source", "follows", "disagreement", "not_compared", "data_tokens"}
DERIVED = {"steps", "tokens", "rows_per_step", "fp8", "chunked_ce", "mixture"}

_cache: dict[str, object] = {}


def resolved(recipe: str):
    if recipe not in _cache:
        _cache[recipe] = resolve_recipe(RECIPES / recipe)
    return _cache[recipe]


def value(row: dict, section: str, field: str):
    """``section.field`` of the row's resolved recipe (as ``argonne-kit resolve`` prints it)."""
    return resolved(row["recipe"]).to_dict(with_generated=False)[section].get(field)


def steps_and_tokens(row: dict) -> tuple[int, int]:
    """The stage's optimizer steps and tokens as its recipe will run them."""
    train = resolved(row["recipe"]).recipe.train
    per_step = train.total_batch_tokens or train.micro_batch_size * train.seq_len
    if train.max_steps is not None:
        steps = train.max_steps
    elif train.max_tokens is not None:
        steps = train.max_tokens // per_step
    else:
        steps = row["data_tokens"] * train.epochs // per_step
    return steps, steps * per_step


def close(a: float, b: float, pct: float) -> bool:
    return abs(a - b) <= pct / 100 * abs(b)


def test_every_row_key_is_known_and_every_stage_recipe_is_listed():
    for row in ROWS:
        assert set(row) <= set(PLAIN) | TEXT | DERIVED, row["stage"]
        assert (RECIPES / row["recipe"]).is_file(), row["recipe"]
    staged = {stage.recipe.resolve() for release in RELEASES for stage in load_pipeline(RECIPES / release["pipeline"])}
    assert staged == {(RECIPES / row["recipe"]).resolve() for row in ROWS} | {
        # chat stages of 2.5/3.0 with no published numbers of their own (settings: bases/stage_*.toml)
        (RECIPES / name).resolve()
        for name in (
            "argonne2_5_sft.toml",
            "argonne2_5_dpo.toml",
            "argonne2_5_cot_sft.toml",
            "argonne3_sft.toml",
            "argonne3_dpo.toml",
            "argonne3_cot_sft.toml",
        )
    }


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['release']}-{r['stage']}" for r in ROWS])
def test_recipe_matches_published_values(row):
    for key, (section, field) in PLAIN.items():
        if key in row:
            got = value(row, section, field)
            assert got == row[key] or (isinstance(got, float) and math.isclose(got, row[key])), (
                f"{row['recipe']}: {section}.{field} = {got!r}, published {key} = {row[key]!r}"
            )
    if "rows_per_step" in row:
        assert value(row, "train", "total_batch_tokens") // value(row, "train", "seq_len") == row["rows_per_step"]
    if "fp8" in row:
        assert value(row, "train", "fp8") == ("on" if row["fp8"] else "off")
        assert value(row, "model", "pad_vocab_to_multiple_of") == 128  # an FP8-eligible tied head
    if "chunked_ce" in row:
        assert (value(row, "objective", "loss_chunk_size") > 0) == row["chunked_ce"]
    if "mixture" in row:
        assert {s["name"]: s["weight"] for s in value(row, "data", "sources")} == row["mixture"]


@pytest.mark.parametrize(
    "row", [r for r in ROWS if "steps" in r or "tokens" in r], ids=lambda r: f"{r['release']}-{r['stage']}"
)
def test_recipe_length_follows_the_published_count(row):
    steps, tokens = steps_and_tokens(row)
    per_step = tokens // max(steps, 1)
    follows = row.get("follows", "steps" if "steps" in row else "tokens")
    if follows == "steps":
        assert steps == row["steps"]
    else:
        assert abs(tokens - row["tokens"]) < per_step
    other = "tokens" if follows == "steps" else "steps"
    if other in row:
        ours = tokens if other == "tokens" else steps
        if "disagreement" in row:  # the note must describe a real gap
            assert not close(ours, row[other], 0.5), f"{row['stage']}: {other} agree; drop the disagreement note"
        else:
            assert close(ours, row[other], 0.5), f"{row['stage']}: {ours} vs published {other} {row[other]}"


@pytest.mark.parametrize("release", RELEASES, ids=[r["release"] for r in RELEASES])
def test_release_totals(release):
    """The pretraining stages of a release add up to its published totals (within the stated
    tolerance, non-zero only where the published numbers disagree)."""
    rows = {(RECIPES / r["recipe"]).resolve(): r for r in ROWS}
    counted = []
    for stage in load_pipeline(RECIPES / release["pipeline"]):
        row = rows.get(stage.recipe.resolve())
        if row is not None and resolved(row["recipe"]).recipe.objective.kind == "clm":
            counted.append(steps_and_tokens(row))
    pct = release.get("tolerance_pct", 0.0)
    if "steps" in release:
        total = sum(s for s, _ in counted)
        assert close(total, release["steps"], pct) if pct else total == release["steps"]
    if "tokens" in release:
        assert close(sum(t for _, t in counted), release["tokens"], max(pct, 0.05))
