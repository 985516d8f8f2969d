"""Language-model losses of the Argonne models (used by ``forward(labels=…)``).

Label convention. ``forward(input_ids, labels=labels)`` follows Hugging Face: ``labels`` are
aligned with ``input_ids`` (usually the same tensor, ``-100`` = ignored) and are shifted *inside*
(logits at t are scored against labels at t+1). This differs from the original model after
``e7694b3`` (2026-03-27), which expected pre-shifted labels; mixing the two conventions was the
"double shift" defect (D-13). The kit's objectives own shifting: they call the model without
labels and score the logits (or hidden states) themselves.

API (objectives may use the model-side half without importing this module):
- ``model(input_ids, output_hidden_states=True, return_logits=False).hidden_states[-1]`` — the
  final-norm hidden states ``[B, T, d]`` without running the LM head;
- ``model.logits_from_hidden(hidden)`` — tied LM head then softcap, for any row chunk;
- :func:`causal_lm_loss` ``(logits, labels, …)`` — mean next-token CE over supervised tokens,
  plus the optional z-loss and the shifted-logit "MTP" term (:func:`multi_token_term`).
- :func:`logit_loss_sums` ``(logits, targets, with_z)`` — CE sum, z sum and token count of
  logits already aligned with their targets (the clm objective's full-logit path);
- :func:`lm_loss_sums` ``(hidden, logits_fn, targets, chunk_size, with_z)`` — CE sum, z sum
  (``logsumexp²``) and token count for hidden states already aligned with their targets; with
  ``chunk_size > 0`` the LM head + softcap + CE run one row-chunk at a time under activation
  checkpointing, so the full ``[N, V]`` logits never exist (forward or backward). Numerically
  equal to ``chunk_size = 0``.
- :func:`chunked_causal_lm_loss` — the shifted, chunked version of :func:`causal_lm_loss`
  (without MTP, which needs the full logits).

``logits_fn`` is the model's ``logits_from_hidden`` (tied LM head, then softcap). Losses are
computed in fp32; the z-loss is the mean of ``logsumexp(logits)²`` over supervised tokens
(padding rows do not count).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

IGNORE_INDEX = -100


def logit_loss_sums(logits: torch.Tensor, targets: torch.Tensor, with_z: bool):
    """(CE sum, z sum, count) over rows of ``logits [N, V]`` whose target ``[N]`` is not ignored
    (−100), in fp32; the z sum is 0 unless ``with_z``."""
    logits = logits.float()
    nll = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
    keep = targets != IGNORE_INDEX
    z = (torch.logsumexp(logits, dim=-1).pow(2) * keep).sum() if with_z else nll.new_zeros(())
    return nll, z, keep.sum()


def _chunk_sums(logits_fn, hidden, targets, with_z):
    return logit_loss_sums(logits_fn(hidden), targets, with_z)


@torch.compiler.disable  # inductor would re-materialise the full logits (original b12b240)
def lm_loss_sums(
    hidden: torch.Tensor,
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    targets: torch.Tensor,
    chunk_size: int = 0,
    with_z: bool = False,
):
    """CE sum, z-loss sum and supervised-token count for ``hidden [..., d]`` and ``targets [...]``
    (already aligned). ``chunk_size > 0``: chunked, never materialising all logits."""
    hidden = hidden.reshape(-1, hidden.size(-1))
    targets = targets.reshape(-1)
    if chunk_size <= 0:
        return logit_loss_sums(logits_fn(hidden), targets, with_z)
    nll = z = count = None
    for start in range(0, hidden.size(0), chunk_size):
        part = checkpoint(
            _chunk_sums,
            logits_fn,
            hidden[start : start + chunk_size],
            targets[start : start + chunk_size],
            with_z,
            use_reentrant=False,
        )
        nll, z, count = part if nll is None else (nll + part[0], z + part[1], count + part[2])
    return nll, z, count


def shifted_targets(labels: torch.Tensor, shift: int = 1) -> torch.Tensor:
    """``labels[:, shift:]`` padded back to length T with ignored entries, so the targets line
    up with *all* logit rows — no sliced copy of the ``[B, T, V]`` logits is ever made."""
    return F.pad(labels[:, shift:], (0, shift), value=IGNORE_INDEX)


def causal_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    z_loss_weight: float = 0.0,
    mtp_horizon: int = 1,
    mtp_loss_weight: float = 0.0,
) -> torch.Tensor:
    """Mean next-token CE of ``logits [B, T, V]`` against ``labels [B, T]`` (shifted here), plus
    ``z_loss_weight``·mean(logsumexp²) and ``mtp_loss_weight``·mean_h(CE_h / h) for the
    shifted-logit terms h = 2…``mtp_horizon`` (logits at t scored against labels at t+h; the
    same logits, no extra heads)."""
    flat = logits.reshape(-1, logits.size(-1))
    nll, z, count = logit_loss_sums(flat, shifted_targets(labels).reshape(-1), z_loss_weight > 0)
    count = count.clamp(min=1)
    loss = nll / count
    if z_loss_weight:
        loss = loss + z_loss_weight * z / count
    if mtp_loss_weight and mtp_horizon > 1:
        loss = loss + mtp_loss_weight * multi_token_term(flat, shifted_targets(labels), mtp_horizon, logits.size(1) - 1)
    return loss


def multi_token_term(
    flat_logits: torch.Tensor, next_targets: torch.Tensor, horizon: int, max_shift: int
) -> torch.Tensor:
    """The shifted-logit "multi-token" term of the original: mean over h = 2…``horizon`` of
    CE(logits at t, token t+h) / h, each CE a mean over its supervised positions. The *same*
    logits are reused (no extra heads). ``flat_logits [B·T, V]``; ``next_targets [B, T]`` are the
    ordinary next-token targets (h = 1), so the target of shift h is ``next_targets`` moved left by
    h−1. Shifts beyond ``max_shift`` (no target left in the window) are not counted. fp32."""
    terms = []
    for h in range(2, min(horizon, max_shift) + 1):
        nll, _, count = logit_loss_sums(flat_logits, shifted_targets(next_targets, h - 1).reshape(-1), False)
        terms.append(nll / count.clamp(min=1) / h)
    if not terms:
        return flat_logits.new_zeros((), dtype=torch.float32)
    return torch.stack(terms).mean()


def chunked_causal_lm_loss(
    hidden: torch.Tensor,
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    labels: torch.Tensor,
    chunk_size: int,
    z_loss_weight: float = 0.0,
) -> torch.Tensor:
    """:func:`causal_lm_loss` (without MTP) from the final hidden states ``[B, T, d]``, chunked."""
    nll, z, count = lm_loss_sums(hidden[:, :-1], logits_fn, labels[:, 1:], chunk_size, z_loss_weight > 0)
    count = count.clamp(min=1)
    loss = nll / count
    if z_loss_weight:
        loss = loss + z_loss_weight * z / count
    return loss
