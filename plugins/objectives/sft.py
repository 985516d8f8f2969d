"""``sft``: supervised fine-tuning — next-token loss over the supervised span only.

The data source renders a conversation with the tokenizer's chat template and sets ``labels``
aligned with ``input_ids``: the token id inside the supervised span (the assistant reply,
closing ``<|im_end|>`` included) and −100 everywhere else (prompt, padding). This objective owns
the shift (D-13): logits at position t predict ``labels[t + 1]``. The model is called *without*
labels and returns plain logits, so the same code is correct for an Argonne model and for a stock
Hugging Face model (``Qwen3ForCausalLM``, ``LlamaForCausalLM``) used as the base — the original
shifted twice for HF bases and its loss sat at ln V.

The loss is the sum of per-token NLL; the trainer divides it by the supervised-token count of the
whole optimizer step (all micro-batches, all ranks), so a long answer weighs by its tokens, not by
its micro-batch.

The helper :func:`token_nll` is shared by ``dpo`` and ``cot``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from argonne_kit.contracts.objective import Objective, ObjectiveOutput

from .configs import SFTConfig

IGNORE_INDEX = -100

#: Optional batch fields passed through to the model's forward when the data source provides them
#: (``segment_ids`` comes with packed rows and needs a model that honours it, as the Argonne models do).
MODEL_INPUT_FIELDS = ("attention_mask", "position_ids", "segment_ids")


class ChunkedLossConfig(Protocol):
    """What :class:`SFTObjective` reads from its config (``sft``'s and ``cot``'s both have it)."""

    @property
    def loss_chunk_size(self) -> int: ...


def _chunk_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    # fp32 log-softmax: bf16 logits over a large vocabulary lose several bits of the NLL.
    flat = logits.reshape(-1, logits.shape[-1]).float()
    nll = F.cross_entropy(flat, targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none")
    return nll.view(targets.shape)


def _head_chunk_nll(head, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return _chunk_nll(head(hidden), targets)


@torch.compiler.disable  # inductor would fuse the chunks back into full-size logits
def _chunked(fn, args, targets: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """``fn(*args_chunk, targets_chunk)`` over position chunks of ``[B, T-1, …]`` inputs, each
    recomputed in backward (only one chunk's fp32 softmax is ever alive)."""
    pieces = []
    for start in range(0, targets.shape[1], chunk_size):
        stop = start + chunk_size
        chunk = [a[:, start:stop] if torch.is_tensor(a) else a for a in args]
        if torch.is_grad_enabled():
            pieces.append(checkpoint(fn, *chunk, targets[:, start:stop], use_reentrant=False))
        else:
            pieces.append(fn(*chunk, targets[:, start:stop]))
    return torch.cat(pieces, dim=1)


def token_nll(
    model: torch.nn.Module, inputs: Mapping[str, torch.Tensor], chunk_size: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position NLL of the next supervised token and the supervision mask, both ``[B, T-1]``.

    ``inputs`` holds ``input_ids`` and unshifted ``labels`` (plus optional ``attention_mask``/
    ``position_ids``). The model is called *without* labels (D-13); position t then holds
    −log p(labels[t+1] | tokens ≤ t), and 0 where that target is −100.

    ``chunk_size > 0`` bounds memory for big vocabularies: with a model that exposes
    ``logits_from_hidden`` (the Argonne models) the LM head, softcap and CE run chunk by chunk on
    the final hidden states, so the full ``[B, T, V]`` logits never exist; any other model (a
    stock HF base) returns full logits and only the fp32 softmax is chunked.
    """
    kwargs = {name: inputs[name] for name in MODEL_INPUT_FIELDS if name in inputs}
    targets = inputs["labels"][:, 1:]
    mask = targets != IGNORE_INDEX
    head = logits_fn(model) if chunk_size > 0 else None
    if head is not None:
        out = model(input_ids=inputs["input_ids"], output_hidden_states=True, return_logits=False, **kwargs)
        hidden = out.hidden_states[-1][:, :-1]
        return _chunked(_head_chunk_nll, (head, hidden), targets, chunk_size), mask
    logits = model(input_ids=inputs["input_ids"], **kwargs).logits[:, :-1]
    if chunk_size > 0:
        return _chunked(_chunk_nll, (logits,), targets, chunk_size), mask
    return _chunk_nll(logits, targets), mask


def logits_fn(model: torch.nn.Module):
    """The model's hidden→logits map (LM head plus softcap) when it has one, else None."""
    inner = getattr(model, "module", model)  # DDP
    inner = getattr(inner, "_orig_mod", inner)  # torch.compile
    return getattr(inner, "logits_from_hidden", None)


def supervised_tokens(labels: torch.Tensor) -> torch.Tensor:
    """Number of supervised next-token targets (labels after the shift that are not −100)."""
    return (labels[:, 1:] != IGNORE_INDEX).sum()


class SFTObjective(Objective):
    """Sum of next-token NLL over supervised positions; units = supervised tokens."""

    required_fields = ("input_ids", "labels")
    #: Trains a chat model: the exported config's EOS must be the chat template's end-of-turn
    #: token (``argonne_kit.probe.chat_eos_token_id``), not the document EOS, or generate() never
    #: stops (D-5, D-10).
    chat_model = True

    def __init__(self, config: ChunkedLossConfig):
        self.config = config
        self.loss_chunk_size = config.loss_chunk_size

    def units(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return supervised_tokens(batch["labels"])

    def token_weights(self, batch: Mapping[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor | None:
        """Per-position loss weights ``[B, T-1]`` aligned with the shifted targets, or None for
        uniform weights (``cot`` overrides this to weight the thinking span)."""
        return None

    def __call__(self, model: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> ObjectiveOutput:
        nll, mask = token_nll(model, batch, self.config.loss_chunk_size)
        nll = nll * mask
        weights = self.token_weights(batch, mask)
        loss_sum = nll.sum() if weights is None else (nll * weights).sum()
        metric_sums = {"nll": nll.detach().sum()}
        metric_totals = {"supervised_tokens": mask.sum()}
        self.extra_metrics(batch, nll.detach(), mask, metric_sums, metric_totals)
        return ObjectiveOutput(loss_sum, metric_sums, metric_totals)

    def extra_metrics(self, batch, nll, mask, metric_sums, metric_totals) -> None:
        """Hook for subclasses to add metrics computed from the per-position NLL."""


def build(config: SFTConfig) -> SFTObjective:
    return SFTObjective(config)
