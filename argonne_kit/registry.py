"""The plugin manager and the typed registry of named components.

Plugins are discovered through the ``argonne_kit`` entry-point group — built-in plugins
(``argonne_plugins.*``, shipped with the ``argonne-kit`` distribution) exactly like third-party
ones. Each plugin registers components through the ``argonne_kit_register_components(register)``
hook. ``ARGONNE_KIT_PLUGINS`` (comma-separated distribution names) restricts which
distributions load: unset loads all, an empty value loads none, and the built-ins load only when
``argonne-kit`` is named.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import pluggy

from argonne_kit import hookspecs
from argonne_kit.contracts.config import ComponentConfig, ParallelConfig
from argonne_kit.errors import PluginError

PROJECT = hookspecs.PROJECT
ENTRY_POINT_GROUP = PROJECT
ENV_RESTRICT = "ARGONNE_KIT_PLUGINS"

#: The component kinds a plugin may register. A recipe section of the same name (``[data]``,
#: ``[schedule]``…) picks one with ``kind = "<name>"``; ``val_data`` is another data section.
KINDS = ("attention", "objective", "parallel", "data", "schedule")

hookimpl = pluggy.HookimplMarker(PROJECT)


@attrs.frozen
class Distribution:
    """Where a plugin came from: the distribution name and version (``local`` when registered
    directly from Python, e.g. in a test)."""

    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


LOCAL = Distribution("local", "-")


@attrs.frozen
class Component:
    """One registered component: its kind, recipe name, factory, config class and origin."""

    kind: str
    name: str
    factory: Callable[..., Any]
    config_cls: type
    plugin: str
    distribution: Distribution


@attrs.frozen
class PluginInfo:
    """A loaded plugin: its entry-point name, distribution and the components it registered."""

    name: str
    distribution: Distribution
    components: tuple[Component, ...]


class Registry:
    """All components registered by the loaded plugins, looked up by ``(kind, name)``."""

    def __init__(self) -> None:
        self.plugin_manager = pluggy.PluginManager(PROJECT)
        self.plugin_manager.add_hookspecs(hookspecs)
        self._components: dict[tuple[str, str], Component] = {}
        self._plugins: dict[str, PluginInfo] = {}

    # -- loading ---------------------------------------------------------------------------
    def load_entry_points(self, allowed: Iterable[str] | None = None) -> None:
        """Load every plugin advertised in the entry-point group (restricted to the named
        distributions when ``allowed`` is given), then reject unknown hook implementations."""
        allowed_set = None if allowed is None else {_norm(a) for a in allowed}
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist
            distribution = Distribution(dist.name, dist.version) if dist else LOCAL
            if allowed_set is not None and _norm(distribution.name) not in allowed_set:
                continue
            if ep.name in self._plugins:
                other = self._plugins[ep.name].distribution
                if other == distribution:
                    continue  # the same distribution seen twice on sys.path
                raise PluginError(f"plugin name {ep.name!r} is provided by both {other} and {distribution}")
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party plugin must name itself
                raise PluginError(f"cannot load plugin {ep.name!r} ({ep.value}) from {distribution}: {exc}") from exc
            self.register_plugin(plugin, ep.name, distribution)

    def register_plugin(self, plugin: object, name: str, distribution: Distribution = LOCAL) -> None:
        """Register one plugin object and collect the components it registers."""
        if name in self._plugins:
            raise PluginError(
                f"plugin name {name!r} is provided by both {self._plugins[name].distribution} and {distribution}"
            )
        try:
            self.plugin_manager.register(plugin, name=name)
            self.plugin_manager.check_pending()
        except pluggy.PluginValidationError as exc:
            if self.plugin_manager.is_registered(plugin):
                self.plugin_manager.unregister(plugin)
            raise PluginError(f"plugin {name!r} from {distribution}: {exc}") from exc

        collected: list[Component] = []

        def register(kind: str, name_: str, factory: Callable[..., Any], config_cls: type) -> None:
            collected.append(self._add(kind, name_, factory, config_cls, name, distribution))

        for impl in self.plugin_manager.hook.argonne_kit_register_components.get_hookimpls():
            if impl.plugin is plugin:
                impl.function(register=register)
        self._plugins[name] = PluginInfo(name, distribution, tuple(collected))

    def _add(
        self,
        kind: str,
        name: str,
        factory: Callable[..., Any],
        config_cls: type,
        plugin: str,
        distribution: Distribution,
    ) -> Component:
        if kind not in KINDS:
            raise PluginError(
                f"plugin {plugin!r} from {distribution} registers unknown kind {kind!r}; kinds are {', '.join(KINDS)}"
            )
        if not attrs.has(config_cls):
            raise PluginError(
                f"plugin {plugin!r} from {distribution}: config class of {kind} {name!r} "
                f"must be an attrs class, got {config_cls!r}"
            )
        base = ParallelConfig if kind == "parallel" else ComponentConfig
        if not issubclass(config_cls, base):
            raise PluginError(
                f"plugin {plugin!r} from {distribution}: config class of {kind} {name!r} must subclass "
                f"argonne_kit.contracts.config.{base.__name__}, got {config_cls!r}"
            )
        existing = self._components.get((kind, name))
        if existing is not None:
            raise PluginError(
                f"{kind} {name!r} is registered twice: by plugin {existing.plugin!r} from "
                f"{existing.distribution} and by plugin {plugin!r} from {distribution}"
            )
        component = Component(kind, name, factory, config_cls, plugin, distribution)
        self._components[(kind, name)] = component
        return component

    # -- lookup ----------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Component:
        """The component ``name`` of ``kind``; a :class:`PluginError` with the known names and a
        close-match suggestion when it does not exist."""
        try:
            return self._components[(kind, name)]
        except KeyError:
            from argonne_kit.errors import suggest

            known = self.names(kind)
            hint = suggest(name, known)
            raise PluginError(f"no {kind} named {name!r}{hint}; registered: {', '.join(known) or 'none'}") from None

    def has(self, kind: str, name: str) -> bool:
        return (kind, name) in self._components

    def names(self, kind: str) -> list[str]:
        return sorted(n for (k, n) in self._components if k == kind)

    def plugins(self) -> list[PluginInfo]:
        return list(self._plugins.values())


def lazy_factory(target: str) -> Callable[..., Any]:
    """A factory that imports ``"package.module:attribute"`` on its first call and calls it with
    the same arguments. Register it with a config class from a module that does not import torch,
    and resolving a recipe loads neither the implementation nor torch."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise PluginError(f"lazy_factory: {target!r} is not 'package.module:attribute'")

    def factory(*args: Any, **kwargs: Any) -> Any:
        import importlib

        implementation = vars(importlib.import_module(module_name))[attribute]
        return implementation(*args, **kwargs)

    factory.__qualname__ = factory.__name__ = f"lazy({target})"
    return factory


_registry: Registry | None = None
_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, loading entry points on first use (honouring
    ``ARGONNE_KIT_PLUGINS``)."""
    global _registry
    with _lock:
        if _registry is None:
            registry = Registry()
            registry.load_entry_points(allowed_distributions())
            _registry = registry
        return _registry


def reset_registry(registry: Registry | None = None) -> None:
    """Replace (or forget) the process-wide registry; used by tests."""
    global _registry
    with _lock:
        _registry = registry


def allowed_distributions() -> list[str] | None:
    """The distributions named by ``ARGONNE_KIT_PLUGINS`` (None when unset)."""
    value = os.environ.get(ENV_RESTRICT)
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")
