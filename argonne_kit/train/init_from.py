"""Stage chaining: ``[init] from = …`` (D-12).

``from`` may name

- a run directory (its newest verified checkpoint; else its ``final_model/``),
- one of our checkpoints (``…/checkpoints/step_<N>``),
- an original ``checkpoint_step_<N>.pt`` training checkpoint (original.md §3.2 keys), or
- a Hugging Face model directory (``config.json`` + safetensors), or a Hub repo id
  (see :mod:`argonne_kit.model_source`, which locates it).

``init.carry`` says what carries over: ``weights`` (a new phase: fresh optimizer and schedule,
data from the start), ``weights+optimizer`` (AdamW moments too), or ``all`` (also the schedule
position, data position and RNG — only from one of our checkpoints). Cumulative counters
(global step, global tokens) always carry when the source records them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import torch

from argonne_kit.errors import CheckpointError, RecipeError
from argonne_kit.safe_io import safe_torch_load


@attrs.frozen
class InitSource:
    """What ``init.from`` resolved to."""

    kind: str
    """``checkpoint`` | ``original`` | ``hf``."""
    path: Path


def locate_init_source(value: str, base_dir: Path) -> InitSource:
    """Classify ``init.from`` with the model-source resolver (relative paths: recipe directory
    first, then the current one); a run directory means its newest verified checkpoint."""
    from argonne_kit.model_source import resolve_model_source

    try:
        source = resolve_model_source(value, base_dirs=[base_dir], run_prefers="checkpoint")
    except CheckpointError as exc:
        raise RecipeError(f"init.from: {exc}") from None
    if source.kind in ("checkpoint", "original"):
        return InitSource(source.kind, source.path)
    return InitSource("hf", source.path)


def check_carry(source: InitSource, carry: str) -> None:
    if source.kind == "hf" and carry != "weights":
        raise RecipeError(
            f"init.carry = {carry!r}: {source.path} is a Hugging Face model directory, "
            f'which holds weights only; use carry = "weights"'
        )
    if source.kind == "original" and carry == "all":
        raise RecipeError(
            f'init.carry = "all": the original checkpoint {source.path} has no data position '
            f'this kit can restore; use "weights" or "weights+optimizer"'
        )


def load_weights(model: torch.nn.Module, source: InitSource) -> dict[str, int]:
    """Load the source's weights into the bare (not yet wrapped) model by name — the model
    package's loader strips wrapper prefixes, trims padded vocabulary rows (D-22) and fails loudly
    on missing keys. Returns the cumulative counters the source records."""
    from argonne_kit.model.loading import load_original_checkpoint

    if source.kind == "hf":
        load_original_checkpoint(read_hf_weights(source.path), model)
        return {"global_step": 0, "global_tokens": 0}
    blob = read_original(source.path)
    load_original_checkpoint(blob, model)
    return original_counters(blob)


def read_original(path: Path) -> dict[str, Any]:
    """An original ``checkpoint_step_<N>.pt`` (keys of original.md §3.2)."""
    blob = safe_torch_load(path, mmap=True, what="training checkpoint")
    if not isinstance(blob, dict) or "model_state_dict" not in blob:
        raise CheckpointError(f"{path}: not an original training checkpoint (no 'model_state_dict')")
    return blob


def read_hf_weights(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a Hugging Face model directory (single or sharded safetensors)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    index = directory / "model.safetensors.index.json"
    if index.is_file():
        try:
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{index}: not a safetensors index ({type(exc).__name__}: {exc})") from None
    else:
        files = [p.name for p in sorted(directory.glob("*.safetensors"))]
    if not files:
        raise CheckpointError(f"{directory}: no .safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for name in files:
        try:
            state.update(load_file(str(directory / name)))
        except (OSError, ValueError, SafetensorError) as exc:  # a truncated or foreign file
            raise CheckpointError(f"{directory / name}: unreadable safetensors file: {exc}") from None
    return state


def original_counters(blob: dict[str, Any]) -> dict[str, int]:
    return {"global_step": int(blob.get("global_step", 0)), "global_tokens": int(blob.get("tokens_processed", 0))}
