"""``clm``: causal language modelling (next-token cross-entropy), with optional z-loss, the
shifted-logit multi-token (MTP) term and chunked cross-entropy.

The batch carries unshifted windows ``input_ids [B, T+1]``; this objective shifts them itself
(D-13): the model sees ``x = ids[:, :-1]`` and is scored on ``y = ids[:, 1:]``. It returns a loss
*sum* over target tokens; the trainer divides by the number of target tokens of the global batch
(all micro-batches, all data-parallel ranks).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import torch

from argonne_kit.chunked_loss import model_chunked_loss_sums
from argonne_kit.contracts.config import ComponentConfig
from argonne_kit.contracts.objective import Objective, ObjectiveOutput
from argonne_kit.errors import RecipeError
from argonne_kit.loss import combine_loss_sums, logit_loss_sums, multi_token_term
from argonne_kit.recipe.validators import non_negative

from .sft import logits_fn


def _at_least_one(_inst, attribute, value):
    if value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value}")


@attrs.define(kw_only=True)
class CLMConfig(ComponentConfig):
    """Next-token cross-entropy on packed token windows."""

    z_loss_weight: float = attrs.field(default=0.0, validator=non_negative)
    """Weight of the z-loss term ``logsumexp(logits)²`` per target token (0 = off)."""
    loss_chunk_size: int = attrs.field(default=0, validator=non_negative)
    """Target tokens per chunk for chunked cross-entropy: the LM head, softcap and CE run one
    chunk of hidden states at a time, so the full ``[B·T, V]`` logits are never materialised.
    0 = off (full logits). With the kit's models and a plain head the chunks' gradients are
    computed in forward into one weight-gradient buffer (fused, no recomputation); an FP8,
    sharded (DTensor) or custom head recomputes each chunk in backward (activation
    checkpointing) — see ``CausalLMLossMixin.chunked_loss_sums``. Supports the z-loss; refuses
    the MTP term (which needs every row's logits against several targets)."""
    mtp_horizon: int = attrs.field(default=1, validator=_at_least_one)
    """Shifted-logit "multi-token" terms h = 2…H (1 = off): the same logits at t are also scored
    against the token at t+h, each CE divided by h; their mean is added times ``mtp_loss_weight``.
    No extra heads (the original's ``MTP``)."""
    mtp_loss_weight: float = attrs.field(default=0.0, validator=non_negative)
    """Weight of the mean shifted-logit term (0 = off)."""

    def __attrs_post_init__(self) -> None:
        mtp_on = self.mtp_horizon > 1
        if mtp_on != bool(self.mtp_loss_weight):
            raise ValueError(
                f"mtp_horizon = {self.mtp_horizon} and mtp_loss_weight = {self.mtp_loss_weight}: "
                "the multi-token term needs both mtp_horizon > 1 and mtp_loss_weight > 0 "
                "(either alone changes nothing)"
            )
        if mtp_on and self.loss_chunk_size:
            raise ValueError(
                "mtp_horizon > 1 needs the full logits; chunked cross-entropy "
                "(loss_chunk_size > 0) cannot score the shifted targets — set one of them off"
            )


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


def register_all(register) -> None:
    register("objective", "clm", CausalLMObjective, CLMConfig)
