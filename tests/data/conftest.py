"""Fixtures of the data tests: the embedded quickstart assets in a per-session cache."""

from __future__ import annotations

import pytest

from argonne_kit.contracts.data import DataContext


@pytest.fixture(scope="session")
def qs_cache(tmp_path_factory):
    """A private ARGONNE_KIT_CACHE with the quickstart assets generated once."""
    from argonne_kit.data.embedded import ensure_quickstart_assets

    cache = tmp_path_factory.mktemp("argonne_cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("ARGONNE_KIT_CACHE", str(cache))
    ensure_quickstart_assets(cache)
    yield cache
    mp.undo()


@pytest.fixture(scope="session")
def tokenizer(qs_cache):
    from argonne_kit.data.tokenizer import load_tokenizer

    return load_tokenizer(None, cache_dir=qs_cache)[0]


@pytest.fixture
def make_source(tokenizer):
    """``make_source(kind, config_dict, rank=0, world=1, B=2, T=32, seed=0, recipe_dir=".")``."""
    from argonne_kit.recipe.convert import structure
    from argonne_kit.registry import get_registry

    def make(kind, config=None, *, rank=0, world=1, B=2, T=32, seed=0, recipe_dir="."):
        component = get_registry().get("data", kind)
        cfg = structure(dict(config or {}), component.config_cls, "data")
        return component.factory(cfg, DataContext(rank, world, B, T, seed, tokenizer, str(recipe_dir)))

    return make
