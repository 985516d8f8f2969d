"""How the models call attention: per-layer specs, lazily resolved backends, KV cache.

Every layer's attention goes through the attention contract (``argonne_kit.contracts.attention``).
:class:`AttentionPlan` holds the per-layer specs (causal, window) and the backend chosen when the
model is built or re-targeted (``set_attention_backend``): a built-in kernel of
:mod:`argonne_kit.kernels`, a plugin's instance handed over by the caller, or ``auto``. It
checks them once per distinct runtime — device type, compute dtype, whether gradients flow,
padding/segments present, prefill or cached decode — and keeps the result, so ``auto`` may pick
different kernels for training and for generation. A forward pass never consults the plugin
registry: an exported model runs with nothing but torch and transformers. The model casts q/k/v
to the compute dtype (the autocast dtype when autocast is on) before the call (D-27): fp32 RoPE
tables and fp32 norm weights would otherwise promote q/k to fp32, the fused kernels would refuse
them, and training would silently run on the O(T²) math path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from argonne_kit.contracts.attention import AttentionBackend, AttentionSpec, AttentionUnsupported, Runtime
from argonne_kit.kernels import BUILTIN_BACKENDS, auto_candidates, first_capable
from argonne_kit.kernels.math import MathAttention

log = logging.getLogger(__name__)


def assign_backends(
    specs: list[AttentionSpec], runtime: Runtime, backend: AttentionBackend | None, candidates: list[AttentionBackend]
) -> list[AttentionBackend]:
    """One backend per layer: ``backend`` for every layer (each spec checked), or — ``backend``
    None, i.e. ``auto`` — per layer the first of ``candidates`` that can honour it."""
    if backend is not None:
        for i, spec in enumerate(specs):
            try:
                backend.check(spec, runtime)
            except AttentionUnsupported as exc:
                raise AttentionUnsupported(f"layer {i} (window={spec.window}): {exc}") from None
        return [backend] * len(specs)
    return [
        first_capable(candidates, spec, runtime, f"layer {i}: no attention backend") for i, spec in enumerate(specs)
    ]


def describe(specs: list[AttentionSpec], backends: list[AttentionBackend]) -> str:
    """``0:sdpa(full) 1:sdpa(window 256) …``"""
    return " ".join(
        f"{i}:{b.name}({'full' if s.window is None else f'window {s.window}'})"
        for i, (s, b) in enumerate(zip(specs, backends))
    )


class AttentionPlan:
    """Per-layer attention specs plus the backends resolved for each runtime."""

    def __init__(
        self,
        backend_name: str,
        windows: list[int | None],
        head_dim: int,
        num_heads: int,
        num_kv_heads: int,
        dropout: float = 0.0,
    ):
        self.windows = list(windows)
        self.head_dim = head_dim
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.dropout = dropout
        self.prefill_specs = [AttentionSpec(causal=True, window=w) for w in self.windows]
        #: training forward passes: attention-probability dropout (the 1.x models), else the same specs
        self.dropout_specs = (
            [AttentionSpec(causal=True, window=w, dropout=dropout) for w in self.windows]
            if dropout
            else self.prefill_specs
        )
        self._resolved: dict[tuple, list[AttentionBackend]] = {}
        self.backend: AttentionBackend | None = None
        self.set_backend(backend_name)

    def set_backend(self, name: str, backend: AttentionBackend | None = None) -> None:
        """Use the backend ``name``: ``auto``, a built-in kernel, or ``backend`` — a pre-built
        instance (a plugin's, or one configured by a recipe's ``[attention]`` section). Forgets
        every cached resolution."""
        if backend is None and name != "auto" and name in BUILTIN_BACKENDS:
            backend = BUILTIN_BACKENDS[name]()
        self.backend_name = name
        self.backend = backend
        self._candidates = auto_candidates() if name == "auto" else []
        self._resolved.clear()

    def runtime(
        self,
        device_type: str,
        dtype: torch.dtype,
        needs_backward: bool,
        padding_mask: bool = False,
        segments: bool = False,
    ) -> Runtime:
        return Runtime(
            device_type=device_type,
            dtype=dtype,
            head_dim=self.head_dim,
            num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads,
            needs_backward=needs_backward,
            padding_mask=padding_mask,
            segments=segments,
        )

    def backends(self, runtime: Runtime, decoding: bool, dropout: bool = False) -> list[AttentionBackend]:
        """One backend per layer for ``runtime`` (resolved once, then cached). ``decoding``
        checks the backends for cached decode (a query offset > 0) as well; ``dropout`` for
        the training specs with attention dropout."""
        return self.backends_for(
            runtime.device_type,
            runtime.dtype,
            runtime.needs_backward,
            runtime.padding_mask,
            runtime.segments,
            decoding,
            dropout,
        )

    def backends_for(
        self,
        device_type: str,
        dtype: torch.dtype,
        needs_backward: bool,
        padding_mask: bool,
        segments: bool,
        decoding: bool,
        dropout: bool = False,
    ) -> list[AttentionBackend]:
        """:meth:`backends` keyed by plain values: the lookup the forward pass makes. A hit
        constructs nothing, so ``torch.compile`` traces it without a graph break."""
        key = (device_type, dtype, needs_backward, padding_mask, segments, decoding, dropout)
        found = self._resolved.get(key)
        if found is None:
            found = self._resolve(
                self.runtime(device_type, dtype, needs_backward, padding_mask, segments), decoding, dropout
            )
            self._resolved[key] = found
        return found

    def _resolve(self, runtime: Runtime, decoding: bool, dropout: bool) -> list[AttentionBackend]:
        specs = self.specs(1 if decoding else 0, dropout)
        if self.backend is None and self.backend_name != "auto":
            raise AttentionUnsupported(
                f"attention backend {self.backend_name!r} is not built in; install a "
                "plugin's backend with model.set_attention_backend(name, backend)"
            )
        backends = assign_backends(specs, runtime, self.backend, self._candidates)
        log.info(
            "attention %s on %s/%s (%s): %s",
            self.backend_name,
            runtime.device_type,
            runtime.dtype,
            "training" if runtime.needs_backward else "inference",
            describe(specs, backends),
        )
        return backends

    def dropout_active(self, training: bool, query_offset: int = 0) -> bool:
        """Attention dropout applies: a training forward of a plan with dropout, not a decode."""
        return training and self.dropout > 0 and query_offset == 0

    def specs(self, query_offset: int, dropout: bool = False) -> list[AttentionSpec]:
        """The layers' specs for queries starting at ``query_offset`` (dropout: training prefill only)."""
        if dropout and query_offset == 0:
            return self.dropout_specs
        if query_offset == 0:
            return self.prefill_specs
        return [AttentionSpec(causal=True, window=w, query_offset=query_offset) for w in self.windows]

    def describe(self, runtime: Runtime, decoding: bool = False, dropout: bool = False) -> list[tuple[str, int | None]]:
        """``[(backend name, window), …]`` per layer, as resolved for ``runtime``."""
        return [(b.name, w) for b, w in zip(self.backends(runtime, decoding, dropout), self.windows)]

    def __getstate__(self):
        # resolved backends are a cache; a copy (e.g. a DPO reference model) resolves its own
        state = dict(self.__dict__)
        state["_resolved"] = {}
        return state


@dataclass
class AttentionContext:
    """What every layer's attention needs in one forward call."""

    backends: list[AttentionBackend]
    specs: list[AttentionSpec]
    dtype: torch.dtype
    key_padding_mask: torch.Tensor | None
    segment_ids: torch.Tensor | None
    weights: list[torch.Tensor] | None = None
    """Filled with each layer's attention probabilities when ``output_attentions`` is asked."""


def compute_dtype(device_type: str, activation_dtype: torch.dtype) -> torch.dtype:
    """The autocast dtype when autocast is on for ``device_type``, else the activation dtype."""
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return activation_dtype


def build_context(
    plan: AttentionPlan,
    hidden: torch.Tensor,
    attention_mask: torch.Tensor | None,
    segment_ids: torch.Tensor | None,
    past_length: int,
    training: bool = False,
    output_attentions: bool = False,
) -> AttentionContext:
    """Resolve the backends for this call and turn ``attention_mask [B, past+T]`` (1 = token,
    0 = padding) into a key padding mask (dropped when it hides nothing). ``training`` (the
    model's mode) switches on the plan's attention dropout; ``output_attentions`` collects the
    attention probabilities, which only the ``math`` kernel (``eager``) materialises."""
    device_type = hidden.device.type
    dtype = compute_dtype(device_type, hidden.dtype)
    key_padding_mask = None
    if attention_mask is not None:
        if attention_mask.dim() != 2:
            raise ValueError(
                f"attention_mask must be [batch, keys] (1 = token, 0 = padding), "
                f"got shape {tuple(attention_mask.shape)}"
            )
        key_padding_mask = attention_mask.to(torch.bool)
        # An all-ones mask would only force a masked kernel; under compile keep it (no sync).
        if not torch.compiler.is_compiling() and bool(key_padding_mask.all()):
            key_padding_mask = None
    if segment_ids is not None and past_length:
        raise ValueError("segment_ids (packed documents) cannot be combined with a KV cache")
    dropout = plan.dropout_active(training, past_length)
    backends = plan.backends_for(
        device_type,
        dtype,
        torch.is_grad_enabled(),
        key_padding_mask is not None,
        segment_ids is not None,
        past_length > 0,
        dropout,
    )
    weights: list[torch.Tensor] | None = None
    if output_attentions:
        running = sorted({b.name for b in backends if not isinstance(b, MathAttention)})
        if running:
            raise ValueError(
                f"output_attentions=True needs the attention weights, which only the 'math' "
                f"kernel (attn_implementation='eager') computes; this model runs {running}. "
                "Load or switch it with attn_implementation='eager'"
            )
        weights = []
    return AttentionContext(backends, plan.specs(past_length, dropout), dtype, key_padding_mask, segment_ids, weights)


def attend(
    ctx: AttentionContext, layer_idx: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache=None
) -> torch.Tensor:
    """Attention of one layer: cast q/k/v ``[B, H, T, d]`` to the compute dtype, append k/v to
    the KV cache (a transformers ``Cache``) when given, and call the layer's backend. A static
    cache returns its whole preallocated length: the padding mask is extended with hidden keys
    (the slots beyond the queries are hidden by causality anyway)."""
    q, k, v = q.to(ctx.dtype), k.to(ctx.dtype), v.to(ctx.dtype)
    if cache is not None:
        k, v = cache.update(k, v, layer_idx)
    mask = ctx.key_padding_mask
    if mask is not None and mask.shape[1] < k.shape[2]:
        mask = F.pad(mask, (0, k.shape[2] - mask.shape[1]), value=False)
    backend, spec = ctx.backends[layer_idx], ctx.specs[layer_idx]
    if ctx.weights is not None:
        assert isinstance(backend, MathAttention)  # build_context refuses weights from any other kernel
        out, probs = backend.forward_with_weights(q, k, v, spec, key_padding_mask=mask, segment_ids=ctx.segment_ids)
        ctx.weights.append(probs)
        return out
    return backend(q, k, v, spec, key_padding_mask=mask, segment_ids=ctx.segment_ids)


def default_runtime(config) -> Runtime:
    """Inference on this machine's default device and dtype, for a config's head layout."""
    return Runtime(
        device_type="cuda" if torch.cuda.is_available() else "cpu",
        dtype=torch.get_default_dtype(),
        head_dim=config.head_dim,
        num_heads=config.num_attention_heads,
        num_kv_heads=getattr(config, "num_key_value_heads", config.num_attention_heads),
        needs_backward=False,
    )


def resolve_plan_names(
    plan: AttentionPlan, device_type: str, dtype: torch.dtype, training: bool, decoding: bool = False
) -> list[tuple[str, int | None]]:
    """Per-layer ``(backend, window)`` for a model about to run on ``device_type``/``dtype``."""
    dropout = plan.dropout_active(training, 1 if decoding else 0)
    return plan.describe(plan.runtime(device_type, dtype, training), decoding, dropout)
