"""Float8 training with torchao, as Argonne 3.5 and 4.0 trained: tensorwise dynamic scaling on
every block linear and the tied LM head.

``train.fp8 = "on"`` swaps each eligible ``nn.Linear`` (our :class:`~argonne_kit.model.linear.Linear`
included) for torchao's ``Float8Linear``: inputs, weights and output gradients are cast to
float8 with one dynamic scale per tensor, the matmuls run on FP8 tensor cores, the master weights
stay fp32. The swap keeps parameter objects and names, so state-dict keys, checkpoints and the
embedding↔head tie are unchanged. ``"emulate"`` performs the same casts and scaling but multiplies
in high precision, on any device — how the tests check conversion and numerics on CPU.

Eligibility follows the original: both dimensions multiples of 16 (torch's float8 GEMM
requirement). The head is eligible only when the vocabulary is, hence
``model.pad_vocab_to_multiple_of = 128`` (151,669 → 151,680 rows); exports trim the padding back
(:func:`argonne_kit.train.export.trim_padded_vocab`). Which linears were converted is logged — the
original once claimed FP8 on a head that stayed bf16.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from argonne_kit.errors import RecipeError

#: Both dimensions of a converted linear must be multiples of this.
FP8_DIM_MULTIPLE = 16
#: Lowest CUDA compute capability with FP8 tensor cores (Ada / Hopper).
FP8_MIN_CAPABILITY = (8, 9)


def check_fp8_device(mode: str, device: torch.device) -> None:
    """Refuse real FP8 where there are no FP8 tensor cores (``emulate`` runs anywhere)."""
    if mode != "on":
        return
    if device.type != "cuda":
        raise RecipeError(
            f'train.fp8 = "on": float8 training needs an NVIDIA GPU with FP8 tensor cores '
            f'(compute capability ≥ 8.9); this run is on {device.type}. Use fp8 = "emulate" '
            f'to check the numerics without one, or fp8 = "off"'
        )
    capability = torch.cuda.get_device_capability(device)
    if capability < FP8_MIN_CAPABILITY:
        raise RecipeError(
            f'train.fp8 = "on": {torch.cuda.get_device_name(device)} (compute capability '
            f"{capability[0]}.{capability[1]}) has no FP8 tensor cores (needs ≥ 8.9); "
            f'use fp8 = "off"'
        )


def fp8_eligible(module: nn.Module, name: str, lm_head: bool = True) -> bool:
    """Whether the linear ``name`` is converted: dims multiples of 16, and the head only when
    ``lm_head``."""
    if not isinstance(module, nn.Linear):
        return False
    if name.rsplit(".", 1)[-1] == "lm_head" and not lm_head:
        return False
    return module.in_features % FP8_DIM_MULTIPLE == 0 and module.out_features % FP8_DIM_MULTIPLE == 0


def convert_to_fp8(
    model: nn.Module, mode: str, device: torch.device, *, lm_head: bool = True, log: Callable[[str], None] | None = None
) -> list[str]:
    """Swap the eligible linears of ``model`` for torchao ``Float8Linear`` in place (tensorwise
    dynamic scaling; ``mode`` ``"on"`` or ``"emulate"``; ``"off"`` does nothing). Returns the
    converted module names and logs them with those left in high precision."""
    if mode == "off":
        return []
    check_fp8_device(mode, device)
    try:
        from torchao.float8 import Float8LinearConfig, convert_to_float8_training
    except ImportError:
        raise RecipeError("train.fp8: needs torchao (pip install 'argonne-kit[fp8]')") from None
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    chosen = [name for name, module in model.named_modules() if fp8_eligible(module, name, lm_head)]
    tied = _tied_head(model)
    config = Float8LinearConfig.from_recipe_name("tensorwise")
    if mode == "emulate":
        config = Float8LinearConfig(**{**_fields(config), "emulate": True})
    convert_to_float8_training(model, config=config, module_filter_fn=lambda m, fqn: fqn in chosen)
    if tied and not _tied_head(model):  # the original asserted the same after its conversion
        raise RuntimeError("fp8: the conversion broke the embedding ↔ LM head tie")
    skipped = [name for name in linears if name not in chosen]
    if log is not None:
        log(
            f"fp8 ({mode}, tensorwise dynamic): converted {len(chosen)} of {len(linears)} linears"
            f"{' including lm_head' if 'lm_head' in chosen else ''}"
            + (f"; kept in high precision: {', '.join(skipped)}" if skipped else "")
        )
    return chosen


def _tied_head(model: nn.Module) -> bool | None:
    """True/False: whether the LM head's weight is the embedding's parameter; None without both."""
    from transformers import PreTrainedModel

    if not isinstance(model, PreTrainedModel):
        return None
    head, embed = model.get_output_embeddings(), model.get_input_embeddings()
    if head is None or embed is None:
        return None
    return head.weight is embed.weight


def _fields(config) -> dict:
    import dataclasses

    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
