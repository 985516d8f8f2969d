"""``auto``: a backend that dispatches each call to the first capable built-in backend.

Recipes say ``[attention] kind = "auto"`` (the default). The model resolves that itself, per
layer, when it runs (``argonne_kit.model.attend``). This class is for callers that need one
backend object: at each call it derives the :class:`Runtime` from the tensors and runs the
backend that :func:`argonne_kit.kernels.first_capable` picks — the same rule as the
model's. A backend is chosen by capability only: an error inside it propagates, nothing is
retried elsewhere (D-15).
"""

from __future__ import annotations

import logging

from argonne_kit.contracts.attention import AttentionBackend, AttentionSpec, Capabilities, Runtime
from argonne_kit.kernels import auto_candidates, first_capable
from argonne_kit.kernels.inputs import needs_grad, runtime_of, validate

from .configs import AutoConfig

log = logging.getLogger(__name__)


class AutoAttention(AttentionBackend):
    """Per-call dispatch to the first built-in backend that can honour the call."""

    name = "auto"

    def __init__(self, config: AutoConfig | None = None):
        self.config = config or AutoConfig()
        self.candidates = auto_candidates()
        self._chosen: dict = {}
        self._by_call: dict = {}

    # The contract's class attribute becomes a property here: the union must be read live,
    # because a candidate's availability (flash-attn installed, a GPU present) is checked when asked.
    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        """The union of the candidates' capabilities (what *some* candidate can do);
        :meth:`check` decides per spec and runtime."""
        caps = [c.capabilities for c in self.candidates if c.available() is None]
        # None (no limit) when any candidate has none, or when there is no candidate at all
        head_limits = [c.max_head_dim for c in caps if c.max_head_dim is not None]
        return Capabilities(
            dtypes=frozenset().union(*(c.dtypes for c in caps)),
            devices=frozenset().union(*(c.devices for c in caps)),
            backward_devices=frozenset().union(*(c.backward_devices for c in caps)),
            window=any(c.window for c in caps),
            gqa=any(c.gqa for c in caps),
            decode=any(c.decode for c in caps),
            padding_mask=any(c.padding_mask for c in caps),
            segments=any(c.segments for c in caps),
            dropout=any(c.dropout for c in caps),
            max_head_dim=max(head_limits) if caps and len(head_limits) == len(caps) else None,
            head_dim_multiple=min((c.head_dim_multiple for c in caps), default=1),
        )

    def choose(self, spec: AttentionSpec, rt: Runtime) -> AttentionBackend:
        """The first candidate that accepts ``spec`` under ``rt`` (cached per spec and runtime)."""
        key = (spec, rt)
        chosen = self._chosen.get(key)
        if chosen is None:
            chosen = self._chosen[key] = first_capable(self.candidates, spec, rt)
            log.info(
                "attention auto: window=%s offset=%s on %s/%s (%s) -> %s",
                spec.window,
                spec.query_offset,
                rt.device_type,
                rt.dtype,
                "training" if rt.needs_backward else "inference",
                chosen.name,
            )
        return chosen

    def check(self, spec: AttentionSpec, rt: Runtime) -> None:
        self.choose(spec, rt)

    def forward(self, q, k, v, spec: AttentionSpec, key_padding_mask=None, segment_ids=None):
        validate(q, k, v, spec, key_padding_mask, segment_ids)
        needs_backward = needs_grad(q, k, v)
        # Look up by a plain tuple first: building the Runtime on every call would break
        # torch.compile graphs.
        key = (
            spec,
            q.device.type,
            q.dtype,
            q.shape[1],
            k.shape[1],
            q.shape[3],
            needs_backward,
            key_padding_mask is not None,
            segment_ids is not None,
        )
        backend = self._by_call.get(key)
        if backend is None:
            rt = runtime_of(q, k, key_padding_mask, segment_ids, needs_backward=needs_backward)
            backend = self._by_call[key] = self.choose(spec, rt)
        return backend.forward(q, k, v, spec, key_padding_mask, segment_ids)
