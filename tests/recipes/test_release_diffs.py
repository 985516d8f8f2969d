"""``argonne-kit diff`` between consecutive stages of 3.5 and 4.0, and between the first stages of
3.5 and 4.0, shows exactly the documented changes (docs/releases.md, the stage recipes' headers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from argonne_kit.cli import main
from argonne_kit.recipe.diff import diff_resolved, resolve_any

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def _sources(*entries):
    return [
        {
            "kind": "bin_shards",
            "weight": w,
            "name": n,
            "path": p,
            "split": "train",
            "mode": "packed",
            "shuffle": False,
            "num_workers": 0,
        }
        for n, w, p in entries
    ]


MIX_35 = _sources(
    ("fineweb", 0.85, "../data/argonne3_5/stage1_fineweb_cc_main_2025_21"),
    ("finemath", 0.15, "../data/argonne3_5/stage1_finemath_4plus"),
)
MIX_40 = _sources(
    ("edu", 0.5, "../data/argonne4_0/stage1_edu"),
    ("math", 0.3, "../data/argonne4_0/stage1_math"),
    ("code", 0.2, "../data/argonne4_0/stage1_code"),
)
# a new corpus file: the mixture becomes one flat source
FLAT = {
    "data.sources": None,
    "data.split": "train",
    "data.mode": "packed",
    "data.shuffle": False,
    "data.num_workers": 0,
}

#: (a, b) → every changed key with its value in b (None = absent in b)
DOCUMENTED = {
    ("argonne3_5_s1", "argonne3_5_s2"): {
        **FLAT,
        "data.kind": "bin_shards",
        "data.path": "../data/argonne3_5/stage2_anneal",
        "optim.lr": 2e-4,
        "schedule.warmup_steps": 0,
        "train.max_tokens": 17_500_000_000,
        "run.dir": "runs/argonne3_5_s2",
        "init.from": "runs/argonne3_5_s1",
    },
    ("argonne3_5_s2", "argonne3_5_s3"): {
        "model.max_position_embeddings": 13568,
        "data.path": "../data/argonne3_5/stage3_long_docs",
        "data.mode": "document",
        "optim.lr": 1e-4,
        "train.seq_len": 13568,
        "train.micro_batch_size": 4,
        "train.total_batch_tokens": 488448,
        "train.max_tokens": 6_022_075_392,
        "run.dir": "runs/argonne3_5_s3",
        "init.from": "runs/argonne3_5_s2",
    },
    ("argonne4_0_s1", "argonne4_0_s2"): {
        **FLAT,
        "data.kind": "bin_shards",
        "data.path": "../data/argonne4_0/stage2_anneal",
        "optim.lr": 2e-4,
        "schedule.warmup_steps": 0,
        "schedule.cooldown_steps": 0,
        "schedule.allow_no_decay": True,
        "train.micro_batch_size": 32,
        "train.total_batch_tokens": 589824,
        "train.max_steps": 30630,
        "run.dir": "runs/argonne4_0_s2",
        "init.from": "runs/argonne4_0_s1",
    },
    ("argonne4_0_s2", "argonne4_0_s3"): {
        "model.max_position_embeddings": 13568,
        "data.path": "../data/argonne4_0/stage3_long_docs",
        "data.mode": "document",
        "optim.lr": 1e-4,
        "schedule.cooldown_steps": 900,
        "schedule.allow_no_decay": False,
        "train.seq_len": 13568,
        "train.micro_batch_size": 2,
        "train.total_batch_tokens": 976896,
        "train.max_steps": 6165,
        "run.dir": "runs/argonne4_0_s3",
        "init.from": "runs/argonne4_0_s2",
    },
    ("argonne4_0_s3", "argonne4_0_s4"): {
        "model.max_position_embeddings": 65536,
        "data.path": "../data/argonne4_0/stage4_long_docs",
        "schedule.cooldown_steps": 458,
        "train.seq_len": 65536,
        "train.micro_batch_size": 1,
        "train.total_batch_tokens": 983040,
        "train.max_steps": 3052,
        "run.dir": "runs/argonne4_0_s4",
        "init.from": "runs/argonne4_0_s3",
    },
    # 4.0 = the 3.5 recipe on a re-shaped model, a three-source mixture, chunked CE, a bigger
    # batch, and a cooldown given in steps over a step budget
    ("argonne3_5_s1", "argonne4_0_s1"): {
        "model.hidden_size": 1536,
        "model.num_hidden_layers": 32,
        "model.num_attention_heads": 6,
        "model.num_key_value_heads": 2,
        "model.intermediate_size": 4096,
        "data.sources": MIX_40,
        "objective.loss_chunk_size": 8192,
        "schedule.cooldown_frac": None,
        "schedule.cooldown_steps": 10923,
        "train.micro_batch_size": 170,
        "train.total_batch_tokens": 522240,
        "train.max_tokens": None,
        "train.max_steps": 72827,
        "run.dir": "runs/argonne4_0_s1",
    },
}


@pytest.mark.parametrize("pair", list(DOCUMENTED), ids=[f"{a}->{b}" for a, b in DOCUMENTED])
def test_stage_diff_is_exactly_the_documented_changes(pair):
    a, b = (resolve_any(RECIPES / f"{name}.toml") for name in pair)
    changes = {f"{c.section}.{c.key}": c.b for c in diff_resolved(a, b)}
    assert changes == DOCUMENTED[pair]


def test_first_stages_share_the_mixture_shape():
    """The 3.5 side of the 3.5 → 4.0 mixture change is the published 85/15 FineWeb/FineMath."""
    a = resolve_any(RECIPES / "argonne3_5_s1.toml")
    assert a.to_dict()["data"]["sources"] == MIX_35


def test_diff_command_prints_the_changes(capsys):
    # exit status 1: they differ (as diff(1))
    assert main(["diff", str(RECIPES / "argonne4_0_s3.toml"), str(RECIPES / "argonne4_0_s4.toml")]) == 1
    out = capsys.readouterr().out
    assert "max_position_embeddings: 13568 -> 65536" in out
    assert "cooldown_steps: 900 -> 458" in out
