"""``cot``: chain-of-thought SFT — SFT over examples whose final assistant turn holds
``<think>…</think>``, with the thinking span optionally weighted.

Everything about *which* rows train and how they are rendered belongs to the ``cot`` data source:
its transforms are no-ops by default and it reports per-source drop rates and aborts above its
drop threshold (D-6: the original truncated thinking to 128 tokens, rewrote traces and silently
resampled dropped rows). This objective only scores tokens.

Think span: the supervised positions from ``<think>`` through ``</think>`` inclusive. It comes
from the batch's ``think_mask`` (bool, aligned with ``input_ids``) when the data source provides
one; otherwise it is found from ``think_open_id``/``think_close_id`` (Qwen3: 151667 / 151668).
The loss is Σ wₜ·NLLₜ with wₜ = ``think_weight`` inside the span and 1 elsewhere, divided by the
supervised-token count of the global batch (weights rescale tokens; they do not change the unit).

RoPE θ and the context length are the checkpoint's (D-26: the original overwrote θ with 1e4
unless told otherwise); that is decided where ``[init]`` loads the model, not here.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from argonne_kit.errors import DataError

from .configs import CoTConfig
from .sft import SFTObjective


def think_span_from_ids(input_ids: torch.Tensor, open_id: int, close_id: int) -> torch.Tensor:
    """Bool ``[B, T]``: True from each ``<think>`` through its ``</think>`` inclusive (an
    unclosed block runs to the end of the row)."""
    opens = (input_ids == open_id).cumsum(-1)
    is_close = input_ids == close_id
    closes_before = is_close.cumsum(-1) - is_close.long()
    return opens > closes_before


class CoTObjective(SFTObjective):
    """SFT with the thinking span weighted by ``think_weight``; splits the NLL into its thinking
    and answer shares (``nll_think`` + ``nll_answer`` = ``nll``)."""

    config: CoTConfig

    def think_span(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The think span aligned with the *shifted* targets, ``[B, T-1]``."""
        open_id, close_id = self.config.think_open_id, self.config.think_close_id
        if "think_mask" in batch:
            span = batch["think_mask"].bool()
        elif open_id is not None and close_id is not None:  # resolve() accepts both or neither
            span = think_span_from_ids(batch["input_ids"], open_id, close_id)
        else:
            raise DataError(
                "cot: the batch has no think_mask and objective.think_open_id/think_close_id "
                "are not set, so the thinking span cannot be found"
            )
        return span[:, 1:]

    def token_weights(self, batch, mask):
        if self.config.think_weight == 1.0:
            return None
        span = self.think_span(batch)
        return torch.where(span, torch.full_like(mask, self.config.think_weight, dtype=torch.float32), 1.0)

    def extra_metrics(self, batch, nll, mask, metric_sums, metric_totals) -> None:
        if "think_mask" not in batch and self.config.think_open_id is None:
            return  # nothing to split on; plain SFT metrics only
        # nll_think + nll_answer = nll once the trainer divides by the supervised-token count.
        span = self.think_span(batch) & mask
        metric_sums["nll_think"] = (nll * span).sum()
        metric_sums["nll_answer"] = (nll * (mask & ~span)).sum()
        metric_totals["think_tokens"] = span.sum()


def build(config: CoTConfig) -> CoTObjective:
    return CoTObjective(config)
