"""Attention tests run against a registry holding only the built-in attention plugin, loaded
from its real entry point — so they exercise the published registration and do not depend on
the other plugin kinds."""

from __future__ import annotations

from importlib import metadata

import pytest

import argonne_kit.registry as registry_module
from argonne_kit.registry import ENTRY_POINT_GROUP, Distribution, Registry


def attention_only_registry() -> Registry:
    registry = Registry()
    (entry_point,) = [
        ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.value == "argonne_plugins.attention"
    ]
    dist = entry_point.dist
    registry.register_plugin(entry_point.load(), entry_point.name, Distribution(dist.name, dist.version))
    return registry


@pytest.fixture(autouse=True)
def attention_registry():
    """The process-wide registry, replaced for the test by one holding only attention."""
    previous = registry_module._registry
    registry = attention_only_registry()
    registry_module.reset_registry(registry)
    yield registry
    registry_module.reset_registry(previous)
