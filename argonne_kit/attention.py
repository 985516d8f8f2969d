"""Choosing attention backends per layer, through the registry.

``select_backends(name, specs, runtime)`` returns one backend per layer. A concrete name
(``math``, ``sdpa``, ``flex``, ``flash2`` or a third party's) must honour every layer's spec or
the run refuses to start (D-4); ``auto`` picks, per layer, the first of
``AUTO_PREFERENCE`` that can honour it. The choice is logged once per distinct runtime.
"""

from __future__ import annotations

import logging

from argonne_kit.contracts.attention import AttentionBackend, AttentionSpec, AttentionUnsupported, Runtime
from argonne_kit.registry import get_registry

log = logging.getLogger(__name__)

#: Order in which ``auto`` tries backends.
AUTO_PREFERENCE = ("flash2", "sdpa", "math")

_logged: set = set()


def build_backend(name: str) -> AttentionBackend:
    """Instantiate the registered backend ``name`` with its default config."""
    component = get_registry().get("attention", name)
    return component.factory(component.config_cls())


def select_backends(name: str, specs: list[AttentionSpec], runtime: Runtime,
                    backend: AttentionBackend | None = None) -> list[AttentionBackend]:
    """One backend per layer spec, checked against ``runtime``. ``backend`` may be given
    pre-built (a recipe's ``[attention]`` section with a non-default config)."""
    if name != "auto":
        chosen = backend or build_backend(name)
        for i, spec in enumerate(specs):
            try:
                chosen.check(spec, runtime)
            except AttentionUnsupported as exc:
                raise AttentionUnsupported(f"layer {i} (window={spec.window}): {exc}") from None
        result = [chosen] * len(specs)
    else:
        registry = get_registry()
        candidates = [build_backend(n) for n in AUTO_PREFERENCE if registry.has("attention", n)]
        result = []
        for i, spec in enumerate(specs):
            reasons = []
            for candidate in candidates:
                try:
                    candidate.check(spec, runtime)
                except AttentionUnsupported as exc:
                    reasons.append(str(exc))
                    continue
                result.append(candidate)
                break
            else:
                raise AttentionUnsupported(f"layer {i}: no attention backend can run window={spec.window} "
                                           f"under {runtime}: " + "; ".join(reasons))
    _log_choice(name, specs, runtime, result)
    return result


def describe(specs: list[AttentionSpec], backends: list[AttentionBackend]) -> str:
    """``layer 0: sdpa (full), layer 1: sdpa (window 256), …`` compressed into runs."""
    parts = []
    for i, (spec, backend) in enumerate(zip(specs, backends)):
        parts.append(f"{i}:{backend.name}({'full' if spec.window is None else f'window {spec.window}'})")
    return " ".join(parts)


def _log_choice(name, specs, runtime, backends) -> None:
    key = (name, tuple(specs), runtime, tuple(b.name for b in backends))
    if key in _logged:
        return
    _logged.add(key)
    log.info("attention %s on %s/%s (%s): %s", name, runtime.device_type, runtime.dtype,
             "training" if runtime.needs_backward else "inference", describe(specs, backends))
