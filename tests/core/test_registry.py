"""The plugin manager: entry-point loading, duplicates, unknown hooks, restriction by env var."""

import types

import pytest

from argonne_kit.errors import PluginError
from argonne_kit.registry import KINDS, Distribution, Registry, allowed_distributions, hookimpl


def test_builtin_plugins_load_through_entry_points():
    reg = Registry()
    reg.load_entry_points(None)
    builtins = [p for p in reg.plugins() if p.distribution.name == "argonne-kit"]
    assert {p.name for p in builtins} >= {"attention", "objectives", "parallel", "data", "schedules"}
    assert reg.names("schedule") == ["constant", "cosine", "wsd"]


def test_restriction_to_named_distributions():
    reg = Registry()
    reg.load_entry_points([])
    assert reg.plugins() == []
    reg = Registry()
    reg.load_entry_points(["argonne_kit"])  # normalised like a distribution name
    assert reg.plugins() and all(p.distribution.name == "argonne-kit" for p in reg.plugins())


def test_env_var_parsing(monkeypatch):
    monkeypatch.delenv("ARGONNE_KIT_PLUGINS", raising=False)
    assert allowed_distributions() is None
    monkeypatch.setenv("ARGONNE_KIT_PLUGINS", "")
    assert allowed_distributions() == []
    monkeypatch.setenv("ARGONNE_KIT_PLUGINS", "argonne-kit, my-plugin")
    assert allowed_distributions() == ["argonne-kit", "my-plugin"]


def test_duplicate_component_names_both_distributions(plugin_kit):
    reg = Registry()
    reg.register_plugin(
        plugin_kit.make([("objective", "clm", plugin_kit.EmptyConfig)]), "first", Distribution("dist-a", "1.0")
    )
    with pytest.raises(
        PluginError,
        match=r"objective 'clm' is registered twice: by plugin 'first' from "
        r"dist-a 1\.0 and by plugin 'second' from dist-b 2\.0",
    ):
        reg.register_plugin(
            plugin_kit.make([("objective", "clm", plugin_kit.EmptyConfig)]), "second", Distribution("dist-b", "2.0")
        )


def test_duplicate_plugin_names_both_distributions(plugin_kit):
    reg = Registry()
    reg.register_plugin(plugin_kit.make([]), "same", Distribution("dist-a", "1.0"))
    with pytest.raises(PluginError, match=r"plugin name 'same' is provided by both dist-a 1\.0 and dist-b 2\.0"):
        reg.register_plugin(plugin_kit.make([]), "same", Distribution("dist-b", "2.0"))


def test_unknown_hook_implementation_is_rejected_with_its_distribution():
    @hookimpl
    def argonne_kit_register_componentz(register):  # misspelt hook
        pass

    plugin = types.SimpleNamespace(argonne_kit_register_componentz=argonne_kit_register_componentz)
    reg = Registry()
    with pytest.raises(PluginError, match=r"plugin 'typo' from dist-x 0\.1: .*argonne_kit_register_componentz"):
        reg.register_plugin(plugin, "typo", Distribution("dist-x", "0.1"))
    assert not reg.plugin_manager.get_plugins()


def test_unknown_kind_and_non_attrs_config_are_refused(plugin_kit):
    reg = Registry()
    with pytest.raises(PluginError, match=r"registers unknown kind 'optimiser'; kinds are " + ", ".join(KINDS)):
        reg.register_plugin(plugin_kit.make([("optimiser", "x", plugin_kit.EmptyConfig)]), "p", Distribution("d", "1"))

    class NotAttrs:
        pass

    with pytest.raises(PluginError, match="must be an attrs class"):
        reg.register_plugin(plugin_kit.make([("objective", "x", NotAttrs)]), "q", Distribution("d", "1"))


def test_config_classes_must_subclass_the_config_contract(plugin_kit):
    """The core calls config hooks (``resolve``, ``data_parallel_world``) without probing: a config
    class declares them by subclassing the contract's base, or is refused at registration."""
    import attrs

    @attrs.define
    class Plain:
        """No base."""

    reg = Registry()
    with pytest.raises(PluginError, match=r"objective 'x' must subclass argonne_kit.contracts.config.ComponentConfig"):
        reg.register_plugin(plugin_kit.make([("objective", "x", Plain)]), "a", Distribution("d", "1"))
    with pytest.raises(PluginError, match=r"parallel 'y' must subclass argonne_kit.contracts.config.ParallelConfig"):
        reg.register_plugin(plugin_kit.make([("parallel", "y", plugin_kit.EmptyConfig)]), "b", Distribution("d", "1"))


def test_lookup_suggests_close_names(plugin_kit):
    reg = Registry()
    reg.register_plugin(plugin_kit.make([("attention", "sdpa", plugin_kit.EmptyConfig)]), "p", Distribution("d", "1"))
    assert reg.get("attention", "sdpa").distribution == Distribution("d", "1")
    with pytest.raises(PluginError, match=r"no attention named 'spda'; did you mean 'sdpa'\?; registered: sdpa"):
        reg.get("attention", "spda")


def test_broken_plugin_names_itself(monkeypatch):
    import importlib.metadata as md

    class FakeEP:
        name = "broken"
        value = "nowhere.module"
        group = "argonne_kit"
        dist = types.SimpleNamespace(name="broken-dist", version="9.9")

        def load(self):
            raise ImportError("No module named 'nowhere'")

    monkeypatch.setattr(md, "entry_points", lambda group: [FakeEP()])
    reg = Registry()
    with pytest.raises(PluginError, match=r"cannot load plugin 'broken' \(nowhere\.module\) from broken-dist 9\.9"):
        reg.load_entry_points(None)


def test_lazy_factory_imports_its_target_only_when_called(tmp_path, monkeypatch):
    import sys

    from argonne_kit.registry import lazy_factory

    (tmp_path / "lazy_target_mod.py").write_text("def build(config, scale=1):\n    return config * scale\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    factory = lazy_factory("lazy_target_mod:build")
    assert "lazy_target_mod" not in sys.modules
    assert factory(3, scale=2) == 6 and "lazy_target_mod" in sys.modules
    with pytest.raises(PluginError, match="not 'package.module:attribute'"):
        lazy_factory("lazy_target_mod.build")
