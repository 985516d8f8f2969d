"""``dpo``: direct preference optimisation against a frozen reference model.

Batches carry a chosen and a rejected continuation of the same prompt, each rendered and masked
like SFT (``chosen_input_ids``/``chosen_labels``/``chosen_attention_mask`` and ``rejected_*``;
labels −100 outside the answer). Both halves go through the policy in one forward (concatenated
along the batch), and through the reference under ``no_grad``.

Score of a sequence = the sum (``score = "sum"``) or the mean over target tokens (``"avg"``, the
original's default) of the target tokens' log-probabilities. With
``h = (π_c − π_r) − (ref_c − ref_r)`` and the loss names of TRL:

- ``sigmoid``: −(1−ε)·logσ(β·h) − ε·logσ(−β·h) — DPO; ε > 0 is the label-smoothed
  ("conservative") DPO of the original (``label_smoothing``);
- ``ipo``: (h − 1/(2β))² — IPO; its paper uses length-normalised scores, so pair it with
  ``score = "avg"``;
- ``hinge``: max(0, 1 − β·h) — SLiC.

``chosen_sft_weight`` w adds w·(mean NLL of the chosen answer's tokens) per pair (the original
added w times the token-mean over the micro-batch; per pair keeps the loss a sum over pairs so
that the trainer's global normalisation stays exact).

The unit is the pair: the trainer divides ``loss_sum`` by the number of pairs in the optimizer
step (all micro-batches, all ranks). Logged as sums over pairs (so means after the trainer's
division): ``dpo_loss``, ``chosen_nll``, ``rewards_chosen``, ``rewards_rejected`` (β·(π − ref)),
``reward_accuracy`` (chosen reward > rejected reward), ``reward_margin``; totals of target tokens.

How the trainer provides the reference (``needs_reference_model = True``):

1. ``path = objective.reference_source(init_from)`` — the recipe's ``objective.reference``, else
   the model the policy was initialised from (``[init] from``). Never a copy of the current
   policy: after a resume the policy has moved.
2. Load it with the same loader as ``[init]``, put it on the policy's device, wrap it with the
   run's parallel strategy (FSDP and TP shard it like the policy; no optimizer, no DDP wrapper
   since it gets no gradients), then ``objective.attach_reference(model)`` — which freezes it.
3. With ``precompute_reference = true`` instead (the objective contract's precomputation): before
   the loop the trainer shows the reference every micro-batch this rank will train and validate
   on from the current data position (a resume included); the pairs' reference sums are kept in a
   :class:`ReferenceScores` table keyed by content (a pair seen again in a later epoch is not
   scored twice), the reference is freed, and every CPU batch gets ``ref_chosen_logps``/
   ``ref_rejected_logps`` fields (:meth:`ReferenceScores.annotate`). Each rank scores exactly the
   batches it will consume, so no table is exchanged between ranks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from argonne_kit.contracts.objective import Objective, ObjectiveOutput
from argonne_kit.errors import DataError, PluginError, RecipeError

from .configs import DPOConfig
from .sft import IGNORE_INDEX, MODEL_INPUT_FIELDS, token_nll

HALVES = ("chosen", "rejected")
#: Batch fields carrying precomputed reference sums of target log-probs (one value per pair).
REF_FIELDS = {"chosen": "ref_chosen_logps", "rejected": "ref_rejected_logps"}


# -- the math -------------------------------------------------------------------------------


def sequence_scores(
    model: torch.nn.Module, inputs: Mapping[str, torch.Tensor], score: str, chunk_size: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row (score, sum of target log-probs, target-token count) of ``model`` on ``inputs``
    (``input_ids``, unshifted ``labels`` with −100 outside the target span, optional masks)."""
    nll, mask = token_nll(model, inputs, chunk_size)
    counts = mask.sum(-1)
    logp_sum = -(nll * mask).sum(-1)
    return apply_score(logp_sum, counts, score), logp_sum, counts


def apply_score(logp_sum: torch.Tensor, counts: torch.Tensor, score: str) -> torch.Tensor:
    """``sum`` → the sum itself; ``avg`` → the mean over the row's target tokens."""
    if score == "avg":
        return logp_sum / counts.clamp_min(1)
    return logp_sum


def preference_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    *,
    beta: float,
    loss_type: str,
    label_smoothing: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Per-pair loss and rewards from sequence scores (all ``[N]``).

    Returns ``loss``, ``rewards_chosen`` = β·(π_c − ref_c), ``rewards_rejected`` = β·(π_r − ref_r),
    ``reward_accuracy`` (1.0 where the chosen reward is higher) and ``reward_margin``.
    """
    h = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)
    if loss_type == "sigmoid":
        eps = label_smoothing
        loss = -(1 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h)
    elif loss_type == "ipo":
        loss = (h - 1 / (2 * beta)) ** 2
    elif loss_type == "hinge":
        loss = torch.relu(1 - beta * h)
    else:
        raise RecipeError(f"objective.loss_type: unknown DPO loss {loss_type!r}; known: sigmoid, ipo, hinge")
    rewards_chosen = beta * (policy_chosen - ref_chosen).detach()
    rewards_rejected = beta * (policy_rejected - ref_rejected).detach()
    return {
        "loss": loss,
        "rewards_chosen": rewards_chosen,
        "rewards_rejected": rewards_rejected,
        "reward_accuracy": (rewards_chosen > rewards_rejected).float(),
        "reward_margin": rewards_chosen - rewards_rejected,
    }


# -- batches --------------------------------------------------------------------------------


def _pad_right(tensor: torch.Tensor, length: int, value: int) -> torch.Tensor:
    if tensor.shape[1] == length:
        return tensor
    return F.pad(tensor, (0, length - tensor.shape[1]), value=value)


def concatenated_inputs(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Chosen rows then rejected rows as one batch, right-padded to the longer of the two
    (pad id 0 behind attention_mask 0, label −100: invisible to a causal model)."""
    length = max(batch[f"{half}_input_ids"].shape[1] for half in HALVES)
    pad_values = {"input_ids": 0, "labels": IGNORE_INDEX, "attention_mask": 0, "position_ids": 0, "segment_ids": 0}
    out = {}
    for name in ("input_ids", "labels", *MODEL_INPUT_FIELDS):
        if all(f"{half}_{name}" in batch for half in HALVES):
            out[name] = torch.cat([_pad_right(batch[f"{half}_{name}"], length, pad_values[name]) for half in HALVES])
    return out


def _valid_pairs(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Pairs with at least one target token on both sides (a padding row of a final partial
    batch has none and must not count)."""
    return (batch["chosen_labels"][:, 1:] != IGNORE_INDEX).any(-1) & (
        batch["rejected_labels"][:, 1:] != IGNORE_INDEX
    ).any(-1)


class DPOObjective(Objective):
    """DPO/IPO/hinge preference loss; units = preference pairs."""

    required_fields = ("chosen_input_ids", "chosen_labels", "rejected_input_ids", "rejected_labels")
    needs_reference_model = True
    #: Trains a chat model (see ``SFTObjective.chat_model``).
    chat_model = True

    def __init__(self, config: DPOConfig):
        self.config = config
        self.loss_chunk_size = config.loss_chunk_size
        self.reference: torch.nn.Module | None = None
        #: Reference sums per pair when ``precompute_reference`` (filled before training).
        self.precomputed: ReferenceScores | None = None

    def reference_source(self, init_from: str | None) -> str:
        """Where the trainer loads the reference from: ``objective.reference`` or ``[init] from``."""
        source = self.config.reference or init_from
        if not source:
            raise RecipeError(
                "objective.reference: DPO needs a reference model; set objective.reference "
                "or init.from (the policy's starting weights are the usual reference)"
            )
        return source

    def attach_reference(self, reference: torch.nn.Module) -> None:
        reference.eval()
        reference.requires_grad_(False)
        self.reference = reference

    def units(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return _valid_pairs(batch).sum()

    # -- precomputed reference scores (see the module docstring, step 3) ---------------------
    def precomputes_reference(self) -> bool:
        return self.config.precompute_reference

    def _table(self) -> ReferenceScores:
        """The precomputed scores, created by the first precomputation call."""
        if self.precomputed is None:
            self.precomputed = ReferenceScores()
        return self.precomputed

    def reference_pass_needed(self, batch: Mapping[str, torch.Tensor]) -> bool:
        return bool(self._table().missing(batch))

    @torch.no_grad()
    def record_reference_pass(
        self, reference: torch.nn.Module, batch: Mapping[str, torch.Tensor], device_batch: Mapping[str, torch.Tensor]
    ) -> None:
        reference.eval()
        n = batch["chosen_input_ids"].shape[0]
        _, logp_sum, _ = sequence_scores(
            reference, concatenated_inputs(device_batch), "sum", self.config.loss_chunk_size
        )
        logp_sum = logp_sum.float().cpu()
        self._table().add(batch, logp_sum[:n], logp_sum[n:])

    def prepare_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.precomputed.annotate(batch) if self.precomputed is not None else batch

    def reference_scores(self, batch: Mapping[str, torch.Tensor], inputs, counts: torch.Tensor):
        """(ref_chosen, ref_rejected) scores, from precomputed fields or the attached reference."""
        n = batch["chosen_input_ids"].shape[0]
        if all(field in batch for field in REF_FIELDS.values()):
            logp_sum = torch.cat([batch[REF_FIELDS[half]] for half in HALVES]).to(counts.device, torch.float32)
            scores = apply_score(logp_sum, counts, self.config.score)
        else:
            if self.config.precompute_reference:
                raise PluginError(
                    "objective.precompute_reference = true, but the batch carries no "
                    "ref_chosen_logps/ref_rejected_logps: the trainer did not run the "
                    "reference precomputation (see the dpo module docstring)"
                )
            if self.reference is None:
                raise PluginError(
                    "dpo: no reference model attached and the batch has no precomputed "
                    "ref_chosen_logps/ref_rejected_logps"
                )
            with torch.no_grad():
                scores, _, _ = sequence_scores(self.reference, inputs, self.config.score, self.config.loss_chunk_size)
        return scores[:n], scores[n:]

    def __call__(self, model: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> ObjectiveOutput:
        cfg = self.config
        n = batch["chosen_input_ids"].shape[0]
        inputs = concatenated_inputs(batch)
        scores, logp_sum, counts = sequence_scores(model, inputs, cfg.score, cfg.loss_chunk_size)
        ref_chosen, ref_rejected = self.reference_scores(batch, inputs, counts)
        out = preference_loss(
            scores[:n],
            scores[n:],
            ref_chosen,
            ref_rejected,
            beta=cfg.beta,
            loss_type=cfg.loss_type,
            label_smoothing=cfg.label_smoothing,
        )
        valid = _valid_pairs(batch).to(scores.dtype)
        dpo_loss = out["loss"] * valid
        chosen_nll = -logp_sum[:n] / counts[:n].clamp_min(1) * valid
        loss_sum = dpo_loss.sum()
        if cfg.chosen_sft_weight:
            loss_sum = loss_sum + cfg.chosen_sft_weight * chosen_nll.sum()
        metric_sums = {"dpo_loss": dpo_loss.detach().sum(), "chosen_nll": chosen_nll.detach().sum()}
        for name in ("rewards_chosen", "rewards_rejected", "reward_accuracy", "reward_margin"):
            metric_sums[name] = (out[name] * valid).sum()
        metric_totals = {"chosen_tokens": counts[:n].sum(), "rejected_tokens": counts[n:].sum()}
        return ObjectiveOutput(loss_sum, metric_sums, metric_totals)


# -- precomputed reference scores -----------------------------------------------------------


def pair_keys(batch: Mapping[str, torch.Tensor]) -> list[str]:
    """A content key per pair: a hash of both halves' real tokens and target masks, so that a
    pair is found again whatever its position, epoch, batch or padding length."""
    keys = []
    n = batch["chosen_input_ids"].shape[0]
    for row in range(n):
        digest = hashlib.blake2b(digest_size=16)
        for half in HALVES:
            ids = batch[f"{half}_input_ids"][row]
            labels = batch[f"{half}_labels"][row]
            mask = batch.get(f"{half}_attention_mask")
            keep = mask[row].bool() if mask is not None else torch.ones_like(ids, dtype=torch.bool)
            digest.update(ids[keep].to(torch.int64).cpu().numpy().tobytes())
            digest.update((labels[keep] != IGNORE_INDEX).cpu().numpy().tobytes())
            digest.update(b"|")
        keys.append(digest.hexdigest())
    return keys


class ReferenceScores:
    """Reference sums of target log-probs per preference pair, keyed by :func:`pair_keys`."""

    def __init__(self) -> None:
        self.table: dict[str, tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self.table)

    def add(self, batch: Mapping[str, torch.Tensor], chosen: torch.Tensor, rejected: torch.Tensor) -> None:
        for key, c, r in zip(pair_keys(batch), chosen.tolist(), rejected.tolist()):
            self.table[key] = (c, r)

    def annotate(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Add ``ref_chosen_logps``/``ref_rejected_logps`` (float32 ``[N]``) to a CPU batch."""
        rows = []
        valid = _valid_pairs(batch).tolist()
        for row, key in enumerate(pair_keys(batch)):
            if key not in self.table:
                if not valid[row]:
                    rows.append((0.0, 0.0))  # a padding row: it carries no loss
                    continue
                raise DataError(
                    f"dpo: preference pair at row {row} of this batch was not scored by the "
                    f"reference precomputation ({len(self)} pairs scored, from the batches this "
                    f"run trains and validates on); the data or its order changed since"
                )
            rows.append(self.table[key])
        values = torch.tensor(rows, dtype=torch.float32).view(-1, 2)
        batch[REF_FIELDS["chosen"]] = values[:, 0]
        batch[REF_FIELDS["rejected"]] = values[:, 1]
        return batch

    def missing(self, batch: Mapping[str, torch.Tensor]) -> list[int]:
        """Rows of a batch holding a real pair that is not in the table yet."""
        valid = _valid_pairs(batch).tolist()
        return [row for row, key in enumerate(pair_keys(batch)) if valid[row] and key not in self.table]


def build(config: DPOConfig) -> DPOObjective:
    return DPOObjective(config)
