"""Config classes of the built-in objectives.

Torch-free on purpose: resolving a recipe structures ``[objective]`` into one of these (and runs
their ``resolve`` checks) without importing the objectives' implementation modules, which import
torch; the package registers factories that import those only when an objective is built.
"""

from __future__ import annotations

from typing import Literal

import attrs

from argonne_kit.contracts.config import ComponentConfig
from argonne_kit.errors import RecipeError
from argonne_kit.recipe.validators import at_least_one, non_negative


@attrs.define(kw_only=True)
class SFTConfig(ComponentConfig):
    """Masked next-token loss over the supervised tokens of chat examples."""

    loss_chunk_size: int = attrs.field(default=0, validator=non_negative)
    """Positions per chunk for chunked cross-entropy (worth it for the 151k Qwen vocabulary):
    each chunk's LM head (Argonne models) and fp32 softmax run alone and are recomputed in
    backward. 0 = one pass over the full logits."""


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
    mtp_horizon: int = attrs.field(default=1, validator=at_least_one)
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


@attrs.define(kw_only=True)
class CoTConfig(ComponentConfig):
    """SFT over reasoning traces with an optional weight on the thinking span."""

    loss_chunk_size: int = attrs.field(default=0, validator=non_negative)
    """Positions per chunk for chunked cross-entropy (see ``sft.loss_chunk_size``); 0 = off."""
    think_weight: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    """Loss weight of the supervised tokens from ``<think>`` to ``</think>`` (1 = plain SFT;
    <1 leans on the answer, 0 trains the answer only)."""
    think_open_id: int | None = None
    """Token id of ``<think>`` (151667 in the Qwen3 tokenizer); used when the batch has no
    ``think_mask``."""
    think_close_id: int | None = None
    """Token id of ``</think>`` (151668 in the Qwen3 tokenizer); used when the batch has no
    ``think_mask``."""

    def resolve(self, resolved) -> None:
        if (self.think_open_id is None) != (self.think_close_id is None):
            raise RecipeError("objective: give both think_open_id and think_close_id, or neither")


_SMOOTHING = attrs.validators.and_(attrs.validators.ge(0.0), attrs.validators.lt(0.5))


@attrs.define(kw_only=True)
class DPOConfig(ComponentConfig):
    """Preference optimisation of a policy against a frozen reference."""

    beta: float = attrs.field(default=0.1, validator=attrs.validators.gt(0))
    """β: strength of the implicit KL constraint (the original's default 0.03; 0.2 for the
    3.0/2.5-instruct releases)."""
    loss_type: Literal["sigmoid", "ipo", "hinge"] = "sigmoid"
    """Loss on the log-ratio margin h, named as in TRL: sigmoid (DPO), ipo, hinge."""
    label_smoothing: float = attrs.field(default=0.0, validator=_SMOOTHING)
    """ε of the sigmoid loss: probability that a preference label is flipped (conservative DPO;
    the original's default 0.05). Only meaningful with loss_type = "sigmoid"."""
    score: Literal["sum", "avg"] = "sum"
    """Sequence score: sum of target-token log-probs, or their mean ("avg", the original's
    default, which removes the length bias)."""
    chosen_sft_weight: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    """Weight of an extra NLL term on the chosen answer (mean over its tokens, per pair);
    0 = off (the original's default 0.05)."""
    reference: str | None = None
    """Model directory or checkpoint of the frozen reference; None = the model the policy was
    initialised from (``[init] from``)."""
    precompute_reference: bool = False
    """Score every pair with the reference once before training, then free the reference
    (saves its memory for the whole run; costs one pass over the data)."""
    loss_chunk_size: int = attrs.field(default=0, validator=non_negative)
    """Positions per chunk for the log-prob computation (see ``sft.loss_chunk_size``)."""

    def resolve(self, resolved) -> None:
        if self.label_smoothing and self.loss_type != "sigmoid":
            raise RecipeError(
                f"objective.label_smoothing: only the sigmoid loss is label-smoothed, "
                f"not loss_type = {self.loss_type!r}; set it to 0"
            )
