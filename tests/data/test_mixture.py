"""``mixture``: nested source configs through the registry, rank-synchronous draws, token
progress, exact resume."""

from __future__ import annotations

import pytest
from datatest_utils import check_exact_resume, take

from argonne_kit.errors import RecipeError

TWO = {
    "sources": [
        {"kind": "bin_shards", "weight": 3.0, "name": "shards", "shuffle": True},
        {"kind": "fineweb_parquet", "weight": 1.0, "name": "stream", "split": "validation", "chunk_rows": 32},
    ]
}


def test_structured_through_the_registry(qs_cache):
    from argonne_kit.recipe.convert import structure, unstructure
    from argonne_kit.registry import get_registry

    cls = get_registry().get("data", "mixture").config_cls
    config = structure(TWO, cls, "data")
    assert [e.kind for e in config.entries] == ["bin_shards", "fineweb_parquet"]
    assert unstructure(config)["sources"][1] == {
        "kind": "fineweb_parquet",
        "weight": 1.0,
        "name": "stream",
        "split": "validation",
        "text_column": "text",
        "shuffle": False,
        "chunk_rows": 32,
        "append_eos": True,
        "num_workers": 0,
    }


def test_recipe_errors_name_the_nested_key(tmp_path, qs_cache):
    from argonne_kit.recipe.api import resolve_recipe

    recipe = tmp_path / "r.toml"
    recipe.write_text('[data]\nkind = "mixture"\n[[data.sources]]\nkind = "bin_shards"\nweight = 1.0\nshufle = true\n')
    with pytest.raises(RecipeError, match=r"data: sources\[0\]\.shufle: unknown key; did you mean 'shuffle'"):
        resolve_recipe(recipe)
    recipe.write_text('[data]\nkind = "mixture"\n[[data.sources]]\nkind = "bin_shard"\nweight = 1.0\n')
    with pytest.raises(
        RecipeError, match=r"sources\[0\]\.kind: no data source named 'bin_shard'; did you mean 'bin_shards'"
    ):
        resolve_recipe(recipe)
    recipe.write_text('[data]\nkind = "mixture"\n[[data.sources]]\nkind = "bin_shards"\nweight = -1\n')
    with pytest.raises(RecipeError, match=r"sources\[0\]\.weight: expected a number > 0"):
        resolve_recipe(recipe)


def test_every_rank_draws_the_same_source(make_source, qs_cache):
    ranks = [make_source("mixture", TWO, rank=r, world=2, B=2, T=16) for r in range(2)]
    draws = [[m.choose(i) for i in range(400)] for m in ranks]
    assert draws[0] == draws[1]
    share = sum(d == 0 for d in draws[0]) / 400
    assert 0.68 < share < 0.82  # weight 3:1
    other_seed = make_source("mixture", TWO, seed=5, B=2, T=16)
    assert [other_seed.choose(i) for i in range(400)] != draws[0]


def test_exact_resume_and_token_progress(make_source, qs_cache):
    batches = check_exact_resume(lambda: make_source("mixture", TWO, B=2, T=16), 7, 6)
    source = make_source("mixture", TWO, B=2, T=16)
    take(source, 13)
    stats = source.stats()
    assert stats["tokens_shards"] + stats["tokens_stream"] == 13 * 2 * 16
    assert stats["tokens_shards"] == sum(source.choose(i) == 0 for i in range(13)) * 32
    assert len(batches) == 13
