"""Chunked cross-entropy for an objective's model: the kit's causal LMs pick their own path.

Kept apart from :mod:`argonne_kit.loss`, which the exported models bundle as standalone code and
which therefore cannot import the kit's model package."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn.parallel import DistributedDataParallel

from argonne_kit.loss import generic_chunked_loss_sums


def model_chunked_loss_sums(
    model: torch.nn.Module,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    chunk_size: int,
    z_loss_weight: float,
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
):
    """``(loss, nll, z, count)`` of ``hidden`` against aligned ``targets``, ``chunk_size`` rows at a
    time. The kit's causal LMs (DDP unwrapped) choose their own path — fused where their head
    allows it (``CausalLMLossMixin.chunked_loss_sums``); any other model gets the generic path
    (:func:`argonne_kit.loss.generic_chunked_loss_sums`) through ``logits_fn``, its hidden→logits map."""
    from argonne_kit.model.hf import CausalLMLossMixin  # the model package imports transformers: on use

    inner = model.module if isinstance(model, DistributedDataParallel) else model
    if isinstance(inner, CausalLMLossMixin):
        return inner.chunked_loss_sums(hidden, targets, chunk_size, z_loss_weight)
    return generic_chunked_loss_sums(hidden, logits_fn, targets, chunk_size, z_loss_weight)
