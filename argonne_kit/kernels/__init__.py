"""The built-in attention kernels (``math``, ``sdpa``, ``flex``, ``flash2``) and ``auto``'s rule.

They live with the model, not behind the plugin registry, so a model — and an exported model
running without the kit installed — can run attention with nothing but torch. The attention
plugin registers the same classes under the same names for recipes. Each kernel implements the
attention contract (:mod:`argonne_kit.contracts.attention`), declares its capabilities and
refuses what it cannot honour exactly (D-4); none falls back on errors (D-15) and none changes
the dtype it is given (D-27).
"""

from __future__ import annotations

from argonne_kit.contracts.attention import AttentionBackend, AttentionSpec, AttentionUnsupported, Runtime
from argonne_kit.kernels.flash2 import Flash2Attention
from argonne_kit.kernels.flex import FlexAttention
from argonne_kit.kernels.math import MathAttention
from argonne_kit.kernels.sdpa import SdpaAttention

#: built-in backend name → class (constructed with default options)
BUILTIN_BACKENDS: dict[str, type[AttentionBackend]] = {
    "math": MathAttention,
    "sdpa": SdpaAttention,
    "flex": FlexAttention,
    "flash2": Flash2Attention,
}

#: Order in which ``auto`` tries backends: the fastest that can honour a layer wins.
AUTO_PREFERENCE = ("flash2", "sdpa", "math")

#: transformers' ``attn_implementation`` names → the kit's backend names
HF_ATTENTION_NAMES = {"eager": "math", "sdpa": "sdpa", "flash_attention_2": "flash2", "flex_attention": "flex"}


def auto_candidates() -> list[AttentionBackend]:
    """Fresh instances of the backends ``auto`` chooses from, in preference order."""
    return [BUILTIN_BACKENDS[name]() for name in AUTO_PREFERENCE]


def first_capable(
    candidates: list[AttentionBackend],
    spec: AttentionSpec,
    runtime: Runtime,
    refusal: str = "attention backend 'auto': no backend",
) -> AttentionBackend:
    """``auto``'s rule, the only place it is written: the first candidate whose ``check``
    accepts ``spec`` under ``runtime``; otherwise AttentionUnsupported, starting with
    ``refusal`` and listing every candidate's reason."""
    reasons = []
    for candidate in candidates:
        try:
            candidate.check(spec, runtime)
        except AttentionUnsupported as exc:
            reasons.append(str(exc))
            continue
        return candidate
    raise AttentionUnsupported(f"{refusal} can run window={spec.window} under {runtime}: " + "; ".join(reasons))
