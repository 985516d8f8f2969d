"""What both Argonne families share as Hugging Face models: choosing attention from
``attn_implementation``, loading checkpoints that use the original key names, caches for
``generate``, and outputs shaped as transformers users expect.

Attention names: transformers' ``eager`` / ``sdpa`` / ``flash_attention_2`` / ``flex_attention``
select the kit's ``math`` / ``sdpa`` / ``flash2`` / ``flex`` kernels; the kit's own names and
``auto`` are accepted too. ``config.attn_backend`` keeps the kit's name and
``config._attn_implementation`` reports the transformers name of the kernel that runs (for
``auto``: the one it picks for inference on this machine's default device).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutputWithPast

from argonne_kit.contracts.attention import AttentionBackend, AttentionSpec
from argonne_kit.kernels import BUILTIN_BACKENDS, HF_ATTENTION_NAMES, auto_candidates, first_capable
from argonne_kit.loss import fused_lm_loss_sums, generic_chunked_loss_sums
from argonne_kit.model.attend import AttentionPlan, default_runtime, resolve_plan_names
from argonne_kit.model.config import REPORTED_ATTENTION_KEY, ArgonneConfig, ArgonneV1Config
from argonne_kit.model.linear import Linear

#: the kit's backend name → the transformers name it is reported as
REPORTED_NAMES = {kit: hf for hf, kit in HF_ATTENTION_NAMES.items()}


def kit_backend_name(attn_implementation: str) -> str:
    """The kit's backend name for a transformers or kit name; ValueError for anything else."""
    name = HF_ATTENTION_NAMES.get(attn_implementation, attn_implementation)
    if name != "auto" and name not in BUILTIN_BACKENDS:
        raise ValueError(
            f"attn_implementation={attn_implementation!r} is not supported: choose one of "
            f"{sorted(HF_ATTENTION_NAMES)} (or the kit's {sorted(BUILTIN_BACKENDS)} / 'auto'); a "
            "plugin's backend is installed with model.set_attention_backend(name, backend)"
        )
    return name


def reported_name(kit_name: str, runtime) -> str:
    """What ``config._attn_implementation`` says for the kit backend ``kit_name``."""
    if kit_name == "auto":
        kit_name = first_capable(auto_candidates(), AttentionSpec(), runtime).name
    return REPORTED_NAMES.get(kit_name, kit_name)


if TYPE_CHECKING:
    # the mixins are mixed into PreTrainedModel subclasses; the type checker sees them as one
    _HFModel = PreTrainedModel
else:
    _HFModel = object


class ArgonneHFMixin(_HFModel):
    """Shared Hugging Face behaviour of the Argonne models (a ``PreTrainedModel`` mixin).
    Subclasses set ``legacy_key_mapping`` (regex on an original key → its current name)."""

    config: ArgonneConfig | ArgonneV1Config

    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    #: original checkpoint key (regex) → key of this class; applied when loading
    legacy_key_mapping: dict[str, str] = {}
    #: ``(model, directory)`` → None, run after every ``save_pretrained``: the kit installs the
    #: writer of the standalone code files (exported code has none; transformers copies its files)
    export_code: Callable | None = None

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:
        """``PreTrainedModel.save_pretrained``, then the standalone code files and ``auto_map``."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if ArgonneHFMixin.export_code is not None and kwargs.get("is_main_process", True):
            ArgonneHFMixin.export_code(self, save_directory)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """``PreTrainedModel.from_pretrained`` that also reads checkpoints with the original key
        names (released models, the kit's earlier exports). The renaming is not remembered,
        so ``save_pretrained`` writes the current names."""
        kwargs.setdefault("key_mapping", cls.legacy_key_mapping or None)
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model._weight_conversions = None
        return loaded

    def _check_and_adjust_attn_implementation(
        self, attn_implementation: str | None, is_init_check: bool = False, allow_all_kernels: bool = False
    ) -> str:
        config = self.config
        # transformers re-checks, from every sub-model's __init__, the name it was given last time
        if attn_implementation is not None and attn_implementation != getattr(config, REPORTED_ATTENTION_KEY, None):
            config.attn_backend = kit_backend_name(attn_implementation)
        reported = self._reported_attention(config.attn_backend)
        setattr(config, REPORTED_ATTENTION_KEY, reported)
        return reported

    def set_attn_implementation(self, attn_implementation: str | dict, allow_all_kernels: bool = False) -> None:
        """Switch every layer to the kernel named by a transformers or kit name."""
        if not isinstance(attn_implementation, str):  # transformers' per-sub-config dict: these models have none
            raise TypeError(f"attn_implementation must be one name for the whole model, got {attn_implementation!r}")
        self.set_attention_backend(kit_backend_name(attn_implementation))

    def set_attention_backend(self, name: str, backend: AttentionBackend | None = None) -> None:
        """Switch every layer to the backend ``name`` (a built-in kernel, ``auto``, or — with
        ``backend`` — a pre-built instance such as a plugin's)."""
        self._attention_plan().set_backend(name, backend)
        self.config.attn_backend = name
        self._report_attention(name)

    def attention_plan(
        self,
        device_type: str | None = None,
        dtype: torch.dtype | None = None,
        training: bool | None = None,
        decoding: bool = False,
    ) -> list[tuple[str, int | None]]:
        """``[(backend name, window), …]`` per layer as resolved for the given conditions
        (default: this model's device and dtype, its training flag)."""
        weight = self.get_input_embeddings().weight
        assert isinstance(weight, torch.Tensor)  # an nn.Embedding's
        return resolve_plan_names(
            self._attention_plan(),
            device_type or weight.device.type,
            dtype or weight.dtype,
            self.training if training is None else training,
            decoding,
        )

    def _attention_plan(self) -> AttentionPlan:
        """The backbone's (``base_model``'s: the model itself or its ``model``) attention plan."""
        plan = self.base_model._attention
        assert isinstance(plan, AttentionPlan)  # every Argonne backbone builds one
        return plan

    def _report_attention(self, kit_name: str) -> None:
        """Make ``config._attn_implementation`` name what ``kit_name`` runs."""
        reported = self._reported_attention(kit_name)
        self.config._attn_implementation_internal = reported
        setattr(self.config, REPORTED_ATTENTION_KEY, reported)

    def _reported_attention(self, kit_name: str) -> str:
        if kit_name != "auto" and kit_name not in BUILTIN_BACKENDS:
            return kit_name  # a plugin's backend, installed by set_attention_backend
        return reported_name(kit_name, default_runtime(self.config))

    def create_masks_for_generate(
        self, config, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None, **kwargs
    ) -> torch.Tensor | None:
        """``generate`` builds a 4-D mask for compilable caches (StaticCache); these models take
        the ``[batch, keys]`` padding mask and derive causality and windows themselves."""
        return attention_mask


class CausalLMLossMixin:
    """Chunked cross-entropy of the kit's causal LMs (``ArgonneForCausalLM``,
    ``ArgonneV1ForCausalLM``), which own an ``lm_head`` and ``logits_from_hidden``.

    :meth:`chunked_loss_sums` is the one place that picks the chunked path: the fused one
    (:func:`argonne_kit.loss.fused_lm_loss_sums`, one chunk of logits and one weight gradient
    alive) when the head is a plain linear map it can multiply by itself, else the generic one
    (:func:`argonne_kit.loss.lm_loss_sums`, which calls ``logits_from_hidden`` per chunk and lets
    autograd differentiate whatever the head is)."""

    #: the LM head (the kit's ``Linear``; an FP8 conversion or a wrapper may replace it)
    lm_head: nn.Module
    #: logits of final hidden states (the head, and any softcap); each model defines the method
    logits_from_hidden: Callable[[torch.Tensor], torch.Tensor]

    def logit_softcap(self) -> float:
        """The final-logit softcap ``logits_from_hidden`` applies (0 = none)."""
        return 0.0

    def fusable_head_weight(self) -> torch.Tensor | None:
        """The head's weight when the fused chunked CE may multiply it directly, else None.

        Only an exact ``nn.Linear`` (or the kit's :class:`Linear`) without bias or hooks, whose
        weight is an ordinary tensor. Anything else computes its logits in a way the fused path
        would bypass: torchao's ``Float8Linear`` (an ``nn.Linear`` subclass: FP8 matmuls and
        scaling), a DTensor weight (FSDP2 shards, tensor-parallel layouts: a plain matmul on the
        local shard would be wrong), a PEFT/LoRA wrapper or any other custom head module.
        Decided at each call, on the weight as it is then: the kit's FSDP2 root keeps its gathered
        (plain) parameters after forward, so the fused path runs there on the full weight and
        FSDP reduce-scatters the gradient as it does the generic path's."""
        head = self.lm_head
        if not isinstance(head, nn.Linear) or type(head) not in (nn.Linear, Linear) or head.bias is not None:
            return None
        if head._forward_hooks or head._forward_pre_hooks:
            return None
        # nn.Parameter keeps a tensor subclass's own type (DTensor, FP8/quantized tensors)
        return head.weight if type(head.weight) in (nn.Parameter, torch.Tensor) else None

    def chunked_loss_sums(
        self, hidden: torch.Tensor, targets: torch.Tensor, chunk_size: int, z_loss_weight: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(loss, nll, z, count)`` of the final hidden states ``[..., d]`` against aligned
        ``targets [...]`` (−100 ignored), ``chunk_size`` rows at a time; ``loss = nll +
        z_loss_weight·z`` is the differentiable sum, ``nll``/``z`` are detached (see
        :func:`argonne_kit.loss.fused_lm_loss_sums`)."""
        weight = self.fusable_head_weight()
        if weight is None:
            return generic_chunked_loss_sums(hidden, self.logits_from_hidden, targets, chunk_size, z_loss_weight)
        head = self.lm_head
        # the kit's Linear multiplies bf16/fp16 in fp32 on CPUs without a native GEMM; follow it
        fp32_matmul = isinstance(head, Linear) and head._fp32_route(hidden) is not None
        return fused_lm_loss_sums(
            hidden,
            weight,
            targets,
            chunk_size,
            softcap=self.logit_softcap(),
            z_loss_weight=z_loss_weight,
            fp32_matmul=fp32_matmul,
        )


def finish_output(output, return_dict: bool | None, config):
    """``output`` as a ModelOutput, or as a tuple when ``return_dict`` (default
    ``config.return_dict``) is false."""
    if return_dict is None:
        return_dict = config.return_dict
    return output if return_dict else output.to_tuple()


def past_length(cache, attention_mask: torch.Tensor | None, length: int) -> int:
    """Tokens already in the cache, as a Python int read before any layer updates it: from the
    padding mask's width when there is one (no device sync, so ``torch.compile`` keeps one graph),
    else from the cache."""
    if cache is None:
        return 0
    if attention_mask is not None and attention_mask.dim() == 2:
        return attention_mask.shape[1] - length
    return int(cache.get_seq_length())


def score_last_token(
    model: PreTrainedModel, score: nn.Module, outputs, input_ids: torch.Tensor | None, labels: torch.Tensor | None
) -> SequenceClassifierOutputWithPast:
    """Apply ``score`` (the model's score head) at each row's last non-padding token (the last
    position when there is no ``input_ids`` or no pad token) and compute the loss."""
    logits = score(outputs.last_hidden_state)
    batch = logits.shape[0]
    pad = model.config.pad_token_id
    if pad is None and batch != 1:
        raise ValueError("sequence classification of a batch needs config.pad_token_id to find each row's end")
    if pad is None or input_ids is None:
        last = torch.full((batch,), logits.shape[1] - 1, device=logits.device)
    else:
        real = (input_ids != pad).to(logits.device, torch.int32)
        last = (torch.arange(input_ids.shape[-1], device=logits.device, dtype=torch.int32) * real).argmax(-1)
    pooled = logits[torch.arange(batch, device=logits.device), last]
    loss = None
    if labels is not None:
        loss = model.loss_function(logits=logits, labels=labels, pooled_logits=pooled, config=model.config)
    return SequenceClassifierOutputWithPast(
        loss=loss,
        logits=pooled,
        cache=outputs.cache,
        hidden_states=outputs.hidden_states,
        attentions=outputs.attentions,
    )
