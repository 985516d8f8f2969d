"""Fixtures for the core tests: a registry holding test components for every kind, so the
recipe machinery is tested independently of the built-in plugins."""

from __future__ import annotations

import textwrap
import types

import attrs
import pytest

from argonne_kit import registry as registry_mod
from argonne_kit.contracts.config import ComponentConfig, ParallelConfig
from argonne_kit.registry import Distribution, Registry, hookimpl


@attrs.define(kw_only=True)
class WindowedAttentionConfig(ComponentConfig):
    """Test attention config."""

    window: int | None = None
    """A window."""


@attrs.define(kw_only=True)
class EmptyConfig(ComponentConfig):
    """No settings."""


@attrs.define(kw_only=True)
class EmptyParallelConfig(ParallelConfig):
    """No settings."""


@attrs.define(kw_only=True)
class TokensConfig(ComponentConfig):
    """Test data config."""

    path: str = "data"
    """Where."""


def make_plugin(components):
    @hookimpl
    def argonne_kit_register_components(register):
        for kind, name, cls in components:
            register(kind, name, object, cls)

    return types.SimpleNamespace(argonne_kit_register_components=argonne_kit_register_components)


@pytest.fixture
def plugin_kit():
    """Helpers to build in-memory plugins: ``make(components)`` and an empty config class."""
    return types.SimpleNamespace(make=make_plugin, EmptyConfig=EmptyConfig)


@pytest.fixture
def test_registry():
    """A registry with the built-in schedules plus one test component per other kind."""
    reg = Registry()
    import argonne_plugins.schedules as schedules

    reg.register_plugin(schedules, "schedules", Distribution("argonne-kit", "test"))
    reg.register_plugin(
        make_plugin(
            [
                ("attention", "auto", WindowedAttentionConfig),
                ("attention", "math", WindowedAttentionConfig),
                ("objective", "clm", EmptyConfig),
                ("parallel", "single", EmptyParallelConfig),
                ("data", "tokens", TokensConfig),
            ]
        ),
        "testplugin",
        Distribution("test-dist", "1.0"),
    )
    registry_mod.reset_registry(reg)
    yield reg
    registry_mod.reset_registry(None)


@pytest.fixture
def recipe_dir(tmp_path):
    """A base recipe and two children that differ in one inherited value."""
    (tmp_path / "bases").mkdir()
    (tmp_path / "bases" / "tiny.toml").write_text(
        textwrap.dedent("""
        [model]
        kind = "argonne2"
        hidden_size = 64
        num_hidden_layers = 2
        num_attention_heads = 4
        num_key_value_heads = 2
        [optim]
        lr = 3e-4
    """)
    )
    (tmp_path / "a.toml").write_text(
        textwrap.dedent("""
        extends = "bases/tiny.toml"
        [data]
        kind = "tokens"
        [train]
        seq_len = 32
        micro_batch_size = 2
    """)
    )
    (tmp_path / "b.toml").write_text(
        textwrap.dedent("""
        extends = "a.toml"
        [optim]
        lr = 1e-4
    """)
    )
    return tmp_path
