"""An example third-party argonne_kit plugin (registered through the ``argonne_kit`` entry points)."""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F

from argonne_kit.contracts.attention import AttentionBackend, AttentionSpec, Capabilities
from argonne_kit.contracts.config import ComponentConfig
from argonne_kit.contracts.objective import Objective, ObjectiveOutput
from argonne_kit.registry import hookimpl


@attrs.define(kw_only=True)
class LabelSmoothedCLMConfig(ComponentConfig):
    """Next-token prediction with label smoothing."""

    smoothing: float = 0.1
    """Probability mass spread uniformly over the vocabulary."""


class LabelSmoothedCLM(Objective):
    """CLM on ``input_ids [B, T+1]`` windows; the loss is summed over target tokens."""

    required_fields = ("input_ids",)

    def __init__(self, cfg: LabelSmoothedCLMConfig):
        self.cfg = cfg

    def units(self, batch):
        return torch.tensor(batch["input_ids"][:, 1:].numel(), device=batch["input_ids"].device)

    def __call__(self, model, batch):
        ids = batch["input_ids"]
        logits = model(ids[:, :-1]).logits.float()
        targets = ids[:, 1:]
        loss = F.cross_entropy(
            logits.reshape(-1, logits.size(-1)),
            targets.reshape(-1),
            label_smoothing=self.cfg.smoothing,
            reduction="sum",
        )
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum")
        return ObjectiveOutput(loss_sum=loss, metric_sums={"nll": nll.detach()})


@attrs.define(kw_only=True)
class ChunkedMathConfig(ComponentConfig):
    """Exact attention, a block of queries at a time."""

    query_chunk: int = 128
    """Queries per block (bounds the score matrix to query_chunk × S)."""


class ChunkedMathAttention(AttentionBackend):
    """Explicit softmax attention over query blocks. Supports windows, GQA and decode; no
    padding masks or packed segments (declared, so specs that need them are refused)."""

    name = "chunked_math"
    capabilities = Capabilities(padding_mask=False, segments=False)

    def __init__(self, cfg: ChunkedMathConfig):
        self.chunk = cfg.query_chunk

    def forward(self, q, k, v, spec: AttentionSpec, key_padding_mask=None, segment_ids=None):
        if key_padding_mask is not None or segment_ids is not None:
            raise ValueError("chunked_math: padding masks and segments are not supported")
        groups = q.size(1) // k.size(1)
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
        scale = spec.scale if spec.scale is not None else 1.0 / math.sqrt(q.size(-1))
        key_pos = torch.arange(k.size(2), device=q.device)
        outputs = []
        for start in range(0, q.size(2), self.chunk):
            qc = q[:, :, start : start + self.chunk]
            query_pos = spec.query_offset + start + torch.arange(qc.size(2), device=q.device)
            distance = query_pos[:, None] - key_pos[None, :]
            visible = distance >= 0 if spec.causal else torch.ones_like(distance, dtype=torch.bool)
            if spec.window is not None:
                visible &= distance <= spec.window
            scores = (qc.float() @ k.float().transpose(-1, -2)) * scale
            scores = scores.masked_fill(~visible, float("-inf"))
            outputs.append((scores.softmax(-1) @ v.float()).to(q.dtype))
        return torch.cat(outputs, dim=2)


@hookimpl
def argonne_kit_register_components(register):
    register("objective", "label_smoothed_clm", LabelSmoothedCLM, LabelSmoothedCLMConfig)
    register("attention", "chunked_math", ChunkedMathAttention, ChunkedMathConfig)
