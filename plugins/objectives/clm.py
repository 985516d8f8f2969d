"""``clm``: causal language modelling (next-token cross-entropy), with optional z-loss, the
shifted-logit multi-token (MTP) term and chunked cross-entropy.

The batch carries unshifted windows ``input_ids [B, T+1]``; this objective shifts them itself
(D-13): the model sees ``x = ids[:, :-1]`` and is scored on ``y = ids[:, 1:]``. It returns a loss
*sum* over target tokens; the trainer divides by the number of target tokens of the global batch
(all micro-batches, all data-parallel ranks).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from argonne_kit.chunked_loss import model_chunked_loss_sums
from argonne_kit.contracts.objective import Objective, ObjectiveOutput
from argonne_kit.errors import RecipeError
from argonne_kit.loss import combine_loss_sums, logit_loss_sums, multi_token_term

from .configs import CLMConfig
from .sft import logits_fn


class CausalLMObjective(Objective):
    """Mean next-token cross-entropy (+ ``z_loss_weight``·z-loss + ``mtp_loss_weight``·MTP term)
    over every target token."""

    required_fields = ("input_ids",)

    def __init__(self, cfg: CLMConfig):
        self.cfg = cfg
        self.loss_chunk_size = cfg.loss_chunk_size

    def units(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        ids = batch["input_ids"]
        return torch.tensor(ids.size(0) * (ids.size(1) - 1), device=ids.device, dtype=torch.long)

    def __call__(self, model: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> ObjectiveOutput:
        ids = batch["input_ids"]
        x, y = ids[:, :-1], ids[:, 1:]
        if self.cfg.loss_chunk_size:
            # hidden states once; the model's head + CE then run chunk by chunk, never
            # materialising the full logits
            hidden = model(input_ids=x, output_hidden_states=True, return_logits=False).hidden_states[-1]
            loss, nll, z, _ = model_chunked_loss_sums(
                model, hidden, y, self.cfg.loss_chunk_size, self.cfg.z_loss_weight, _head(model)
            )
        else:
            logits = model(input_ids=x).logits
            flat = logits.reshape(-1, logits.size(-1))
            nll_sum, z_sum, count = logit_loss_sums(flat, y.reshape(-1), bool(self.cfg.z_loss_weight))
            loss, nll, z, _ = combine_loss_sums(nll_sum, z_sum, count, self.cfg.z_loss_weight)
        sums = {"nll": nll}
        if self.cfg.z_loss_weight:
            sums["z_loss"] = z
        if self.cfg.mtp_loss_weight:
            # a per-micro-batch mean like the original's; as a sum it counts once per target token
            mtp = multi_token_term(flat, y, self.cfg.mtp_horizon, y.size(1))
            loss = loss + self.cfg.mtp_loss_weight * mtp * y.numel()
            sums["mtp_loss"] = mtp.detach() * y.numel()
        return ObjectiveOutput(loss_sum=loss, metric_sums=sums)


def _head(model: torch.nn.Module):
    """The model's hidden→logits map; chunked CE cannot work without one."""
    head = logits_fn(model)
    if head is None:
        raise RecipeError(
            f"objective.loss_chunk_size needs a model with logits_from_hidden(); {type(model).__name__} has none"
        )
    return head
