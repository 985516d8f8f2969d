"""Objective contract: (model, batch) → a loss *sum*, its normaliser and metric sums.

Loss normalisation is the mean over every supervised unit (token for CLM/SFT, pair for DPO) of
the **global** batch — all micro-batches of the optimizer step on all data-parallel ranks — never
a mean of per-micro-batch means. The trainer asks each micro-batch for :meth:`Objective.units`
before the step, all-reduces the total, and scales each micro-batch's ``loss_sum`` by it. The
objective owns label shifting (D-13): batches carry unshifted ``labels`` aligned with
``input_ids`` (or ``input_ids`` alone for CLM) and the objective decides how to shift them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

import attrs
import torch


@attrs.define
class ObjectiveOutput:
    """What one micro-batch contributes.

    ``loss_sum`` is differentiable and summed over the micro-batch's units; ``metric_sums`` are
    detached sums over the same units (the trainer reduces them across micro-batches and ranks
    and divides by the global unit count, so ``metric_sums["nll"]`` becomes a mean NLL).
    ``metric_totals`` are detached totals reported as they are (e.g. token counts).
    """

    loss_sum: torch.Tensor
    metric_sums: dict[str, torch.Tensor] = attrs.field(factory=dict)
    metric_totals: dict[str, torch.Tensor] = attrs.field(factory=dict)


class Objective(ABC):
    """A training objective. Subclasses declare the batch fields they need."""

    #: Batch keys this objective reads; the trainer checks every batch and stops with a
    #: DataError naming the missing keys (e.g. SFT on a token source without ``labels``).
    required_fields: tuple[str, ...] = ("input_ids",)
    #: True when the objective needs a frozen reference model (DPO). The trainer then builds
    #: one (from :meth:`reference_source`) and passes it to :meth:`attach_reference`.
    needs_reference_model: bool = False
    #: True when the objective trains a chat model: the exported config's EOS is then the chat
    #: template's end-of-turn token, not the document EOS, or ``generate()`` never stops (D-5).
    chat_model: bool = False
    #: Rows scored per chunk when the objective computes the LM head and its loss chunk-wise
    #: (the full ``[rows, vocab]`` logits never exist); 0 = full logits. ``argonne-kit plan``
    #: sizes the logits' memory from it.
    loss_chunk_size: int = 0

    @abstractmethod
    def units(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Number of supervised units in this micro-batch (a 0-d integer tensor, on the batch's
        device; no host synchronisation)."""

    @abstractmethod
    def __call__(self, model: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> ObjectiveOutput:
        """Run the model on the micro-batch and return the loss sum and metric sums."""

    def reference_source(self, init_from: str | None) -> str | None:
        """Where the frozen reference model is loaded from (only asked when
        ``needs_reference_model``): a checkpoint, run directory, original ``.pt`` or HF model
        directory. ``init_from`` is the recipe's ``[init] from`` (None when unset); None = no
        reference available (the run refuses). Default: the model the policy starts from."""
        return init_from

    def attach_reference(self, reference: torch.nn.Module) -> None:
        """Receive the frozen reference model (only called when ``needs_reference_model``)."""
        raise TypeError(f"{type(self).__name__} does not use a reference model")

    # -- reference precomputation (optional; only for objectives with a reference) -------------
    # When :meth:`precomputes_reference` is true the trainer never attaches the reference. Before
    # the loop it shows the reference every micro-batch this rank will train and validate on, in
    # order: for each it asks :meth:`reference_pass_needed`, takes the max over all ranks (a
    # sharded reference's forward is collective, so ranks agree on which batches run it) and, if
    # any rank needs it, calls :meth:`record_reference_pass`. Then it frees the reference and
    # passes every CPU batch through :meth:`prepare_batch` before the device copy.

    def precomputes_reference(self) -> bool:
        """True to score the data with the reference once before training, then free it."""
        return False

    def reference_pass_needed(self, batch: Mapping[str, torch.Tensor]) -> bool:
        """Whether this CPU batch holds anything the reference has not scored yet."""
        raise TypeError(f"{type(self).__name__} does not precompute reference scores")

    def record_reference_pass(
        self, reference: torch.nn.Module, batch: Mapping[str, torch.Tensor], device_batch: Mapping[str, torch.Tensor]
    ) -> None:
        """Run the frozen reference on ``device_batch`` (the device copy of the CPU ``batch``,
        under the training autocast and ``no_grad``) and keep what the loss will need."""
        raise TypeError(f"{type(self).__name__} does not precompute reference scores")

    def prepare_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Last touch of a CPU batch before it moves to the device (default: unchanged)."""
        return batch
