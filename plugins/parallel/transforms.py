"""Model transforms that every strategy applies the same way: finding the transformer blocks,
activation checkpointing and per-block compilation.

Both keep parameter names unchanged (no wrapper modules), so state-dict keys, the tie between
embedding and head, and checkpoints do not depend on whether they were applied.
"""

from __future__ import annotations

import functools

import torch
from torch.utils.checkpoint import checkpoint

from argonne_kit.contracts.parallel import WrapOptions
from argonne_kit.errors import PluginError


def find_blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The model's list of transformer blocks: the first ``ModuleList`` named ``blocks`` (or
    ``layers``/``h`` for models that use those names)."""
    for wanted in ("blocks", "layers", "h"):
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.ModuleList) and name.rsplit(".", 1)[-1] == wanted:
                return module
    raise PluginError(
        f"parallel: {type(model).__name__} has no ModuleList named 'blocks'; "
        "strategies shard, checkpoint and compile per block"
    )


def apply_activation_checkpointing(blocks: torch.nn.ModuleList, every: int) -> None:
    """Recompute every ``every``-th block's activations in backward (non-reentrant checkpoint).

    The block's ``forward`` is replaced on the instance, so hooks installed later on the module
    (FSDP's unshard/reshard) still run around the checkpointed call.
    """
    for index, block in enumerate(blocks):
        if index % every == 0:
            original = block.forward
            block.forward = functools.partial(checkpoint, original, use_reentrant=False)


def apply_compile(blocks: torch.nn.ModuleList, mode: str | None) -> None:
    """``torch.compile`` each block in place (``Module.compile`` keeps parameter names)."""
    for block in blocks:
        block.compile(mode=mode)


def apply_block_transforms(model: torch.nn.Module, options: WrapOptions) -> None:
    """Activation checkpointing, then compilation, per block (the middle of the fixed order)."""
    if not (options.activation_checkpointing or options.compile):
        return
    blocks = find_blocks(model)
    if options.activation_checkpointing:
        apply_activation_checkpointing(blocks, options.checkpoint_every)
    if options.compile:
        apply_compile(blocks, options.compile_mode)
