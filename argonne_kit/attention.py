"""Attention backends by recipe name, through the plugin registry.

``build_backend(name)`` builds the registered backend ``name`` with its default config (a
third party's included); ``select_backends(name, specs, runtime)`` returns one backend per
layer. A concrete name must honour every layer's spec or the run refuses to start (D-4);
``auto`` picks, per layer, the first built-in kernel that can honour it — by the one rule in
:func:`argonne_kit.kernels.first_capable`, which the models apply themselves when they run.
"""

from __future__ import annotations

from argonne_kit.contracts.attention import AttentionBackend, AttentionSpec, Runtime
from argonne_kit.kernels import auto_candidates
from argonne_kit.model.attend import assign_backends
from argonne_kit.registry import get_registry


def build_backend(name: str) -> AttentionBackend:
    """Instantiate the registered backend ``name`` with its default config."""
    component = get_registry().get("attention", name)
    return component.factory(component.config_cls())


def select_backends(
    name: str, specs: list[AttentionSpec], runtime: Runtime, backend: AttentionBackend | None = None
) -> list[AttentionBackend]:
    """One backend per layer spec, checked against ``runtime``. ``backend`` may be given
    pre-built (a recipe's ``[attention]`` section with a non-default config)."""
    if name == "auto":
        return assign_backends(specs, runtime, None, auto_candidates())
    return assign_backends(specs, runtime, backend or build_backend(name), [])
