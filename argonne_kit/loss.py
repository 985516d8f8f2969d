"""Language-model losses of the Argonne models (used by ``forward(labels=…)``).

Label convention. ``forward(input_ids, labels=labels)`` follows Hugging Face: ``labels`` are
aligned with ``input_ids`` (usually the same tensor, ``-100`` = ignored) and are shifted *inside*
(logits at t are scored against labels at t+1). The last original models expected pre-shifted
labels instead; mixing the two conventions is the "double shift" defect (D-13). The kit's objectives own shifting: they call the model without
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
  equal to ``chunk_size = 0``. Works with any head (the generic chunked path), but every chunk's
  backward recomputes the head and produces its own ``[V, d]`` weight-gradient term, which
  autograd then sums (benchmarks/chunked_ce.py: 2.2× the full-logits memory at d=3072);
- :func:`fused_lm_loss_sums` ``(hidden, weight, targets, chunk_size, …)`` — the same sums for a
  plain linear head ``hidden @ weight.T`` (then the softcap), as one autograd node that computes
  the gradients chunk by chunk *in its forward* (``grad_hidden`` per chunk, ``grad_weight``
  accumulated in one buffer) and only scales them in backward: one chunk of logits and one weight
  gradient alive, no recomputation. The kit's causal LMs pick it over :func:`lm_loss_sums` when
  their head is a plain ``nn.Linear`` with an ordinary weight
  (``CausalLMLossMixin.chunked_loss_sums`` in :mod:`argonne_kit.model.hf`);
- :func:`combine_loss_sums` — ``(nll + w·z, nll, z, count)``, the form both chunked paths return
  to the model and the clm objective; :func:`generic_chunked_loss_sums` is :func:`lm_loss_sums`
  in that form.

``logits_fn`` is the model's ``logits_from_hidden`` (tied LM head, then softcap). Losses are
computed in fp32; the z-loss is the mean of ``logsumexp(logits)²`` over supervised tokens
(padding rows do not count).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable
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


def combine_loss_sums(nll: torch.Tensor, z: torch.Tensor, count: torch.Tensor, z_loss_weight: float):
    """``(nll + z_loss_weight·z, nll, z, count)`` with ``nll`` and ``z`` detached: the loss sum to
    differentiate and its parts to report (what :func:`fused_lm_loss_sums` returns)."""
    loss = nll + z_loss_weight * z if z_loss_weight else nll
    return loss, nll.detach(), z.detach(), count


def generic_chunked_loss_sums(
    hidden: torch.Tensor,
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    targets: torch.Tensor,
    chunk_size: int,
    z_loss_weight: float,
):
    """:func:`lm_loss_sums` for any head, returned as :func:`fused_lm_loss_sums` returns:
    ``(nll + z_loss_weight·z, nll, z, count)``."""
    nll, z, count = lm_loss_sums(hidden, logits_fn, targets, chunk_size, z_loss_weight > 0)
    return combine_loss_sums(nll, z, count, z_loss_weight)


class _FusedLinearCrossEntropy(torch.autograd.Function):
    """``(nll + w·z, nll, z)`` of the logits ``softcap(hidden @ weight.T)``, chunk by chunk, the
    gradients of the first output computed in forward (see :func:`fused_lm_loss_sums`).

    Why one combined differentiable output: the two sums share every chunk's softmax, and the
    weight gradient is the one large buffer ([V, d]); separate differentiable nll and z outputs
    would need a second [V, d] buffer (or a second pass) just so a caller could weight them after
    the fact. Every caller adds them as ``nll + w·z`` anyway, so ``w`` is an argument here and
    ``nll``/``z`` come back detached, for reporting."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk_size, softcap, z_weight, compute, fp32_matmul, with_grad):
        need_h = with_grad and ctx.needs_input_grad[0]
        need_w = with_grad and ctx.needs_input_grad[1]
        # the operands of every matmul: rounded to the compute dtype as autocast would; on CPUs
        # without a native bf16/fp16 GEMM then multiplied in fp32 (argonne_kit.model.linear.Linear)
        operand = torch.float32 if fp32_matmul else compute
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(compute).to(operand)
            grad_h = torch.empty_like(hidden) if need_h else None  # every row is written
            grad_w = torch.zeros_like(weight, memory_format=torch.contiguous_format) if need_w else None
            nll = hidden.new_zeros((), dtype=torch.float32)
            z = hidden.new_zeros((), dtype=torch.float32)
            for start in range(0, hidden.size(0), chunk_size):
                stop = start + chunk_size
                h = hidden[start:stop].to(compute).to(operand)
                target = targets[start:stop]
                keep = (target != IGNORE_INDEX).float()
                safe = target.clamp(min=0)[:, None]
                logits = (h @ w.T).to(compute).float()  # fp32 [chunk, V]; may be the matmul's own output
                if softcap:
                    capped = logits.div_(softcap).tanh_()  # tanh(z / cap), kept for the chain rule
                    logits = capped * softcap
                lse = torch.logsumexp(logits, dim=-1)
                nll += ((lse - logits.gather(1, safe).squeeze(1)) * keep).sum()
                if z_weight:
                    z += (lse.square() * keep).sum()
                if not (need_h or need_w):
                    continue
                # d(nll + w·z)/d logits = softmax·(1 + 2w·lse) − onehot(target), on kept rows
                grad = logits.sub_(lse[:, None]).exp_()
                grad.mul_((keep * (1 + 2 * z_weight * lse) if z_weight else keep)[:, None])
                grad.scatter_add_(1, safe, -keep[:, None])
                if softcap:
                    grad.mul_(capped.square_().neg_().add_(1))  # d(cap·tanh(u/cap))/du = 1 − tanh²
                    del capped
                d = grad.to(compute).to(operand)
                del grad, logits
                if need_h:
                    grad_h[start:stop] = (d @ w).to(compute)
                if need_w:
                    if operand == grad_w.dtype:
                        grad_w.addmm_(d.T, h)
                    else:  # low-precision GEMM into fp32 master weights: one chunk's product at a time
                        grad_w.add_(d.T @ h)
        ctx.mark_non_differentiable(nll, z)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.used = False
        loss = nll + z_weight * z if z_weight else nll.clone()
        return loss, nll, z

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss, _grad_nll, _grad_z):
        if ctx.used:  # the buffers below are scaled in place
            raise RuntimeError("fused_lm_loss_sums: its graph can be backpropagated only once")
        ctx.used = True
        grad_h, grad_w = ctx.saved_tensors
        grad_h = grad_h.mul_(grad_loss) if grad_h is not None else None
        grad_w = grad_w.mul_(grad_loss) if grad_w is not None else None
        return grad_h, grad_w, None, None, None, None, None, None, None


@torch.compiler.disable  # a Python loop of its own; inductor must not trace it
def fused_lm_loss_sums(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    chunk_size: int,
    *,
    softcap: float = 0.0,
    z_loss_weight: float = 0.0,
    fp32_matmul: bool = False,
):
    """``(loss, nll, z, count)`` for the plain linear head ``weight [V, d]`` (no bias) on
    ``hidden [..., d]`` against aligned ``targets [...]`` (−100 ignored), chunk by chunk:
    ``loss = nll + z_loss_weight·z`` is differentiable (to ``hidden`` and ``weight``), ``nll`` (CE
    sum), ``z`` (sum of ``logsumexp²``, 0 when ``z_loss_weight`` is 0) and ``count`` (kept rows)
    are detached. Logits are ``softcap·tanh(hidden @ weight.T / softcap)`` (``softcap`` 0 = off).

    Equal to :func:`lm_loss_sums` with that head (up to summation order), but one autograd node
    owns the weight: its forward scores one chunk of rows at a time and computes that chunk's
    gradients right away — ``grad_hidden`` rows, and ``grad_weight`` accumulated in one buffer —
    so backward only scales them by the incoming gradient. Peak memory: one chunk of fp32 logits
    (two with the softcap) plus the two gradient buffers, which the step needs anyway; the head is
    not recomputed. The graph can be backpropagated once (``retain_graph`` reuse raises).

    Precision as the full path under autocast: the matmuls take their operands in the autocast
    dtype (else ``hidden``'s dtype), losses and the softmax are fp32, ``grad_hidden`` comes back
    in ``hidden``'s dtype and ``grad_weight`` in ``weight``'s (accumulated over chunks in it).
    ``fp32_matmul`` multiplies those rounded operands in fp32 (for CPUs without a native bf16/fp16
    GEMM, as :class:`argonne_kit.model.linear.Linear` does).

    Only for an ordinary tensor weight: an FP8 head, a DTensor weight (FSDP2, tensor parallel) or a
    custom head must use :func:`lm_loss_sums` — the model decides (``chunked_loss_sums``)."""
    flat = hidden.reshape(-1, hidden.size(-1))
    flat_targets = targets.reshape(-1)
    device = flat.device.type
    compute = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else flat.dtype
    loss, nll, z = _FusedLinearCrossEntropy.apply(
        flat,
        weight,
        flat_targets,
        chunk_size,
        float(softcap or 0.0),
        float(z_loss_weight),
        compute,
        fp32_matmul,
        torch.is_grad_enabled(),
    )
    return loss, nll, z, (flat_targets != IGNORE_INDEX).sum()


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
