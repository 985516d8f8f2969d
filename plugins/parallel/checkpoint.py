"""Checkpoint layouts shared by every strategy: a self-describing directory any strategy can load.

A checkpoint directory holds

- ``parallel.json`` — ``{"format", "strategy", "world_size", "mesh"}``: how it was written;
- ``format = "torch"`` (single, ddp): ``state.pt`` with the full model and optimizer state, keyed
  by parameter name, written by the main rank;
- ``format = "dcp"`` (fsdp, tp, dp×tp): a ``torch.distributed.checkpoint`` directory in which every
  rank wrote its own shards (D-16: all shards, the optimizer state of every shard — D-16b — and the
  fp32 master weights), plus ``.metadata`` with the global shapes, so it reshards on load;
- ``extras.pt`` — the plain extras (step, schedule, data position, RNG…) from the main rank.

Integrity (every file's size and checksum, a read-back of the tensors) is checked once, by the
checkpoint manager's manifest, before a load; a load of a damaged file still fails with one line
naming it.

Loading goes through ``torch.distributed.checkpoint.state_dict.set_state_dict``, which
distributes full tensors into whatever layout the model now has (FSDP shards, TP shards, plain),
and DCP loads read exactly the slices the current layout needs — so a checkpoint saved at one
world size or strategy resumes at another.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, cast

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)
from torch.distributed.tensor import DTensor

from argonne_kit.errors import CheckpointError
from argonne_kit.safe_io import (
    StorageError,
    atomic_write_text,
    is_disk_full,
    safe_torch_load,
    save_torch_file,
)

LAYOUT_FILE = "parallel.json"
TORCH_STATE_FILE = "state.pt"
EXTRAS_FILE = "extras.pt"
DCP_METADATA_FILE = ".metadata"
#: Keys of a strategy's ``state_dicts`` output; everything else in ``state`` is an extra.
MODEL_KEY, OPTIM_KEY = "model", "optim"
FORMATS = ("torch", "dcp")

log = logging.getLogger(__name__)


def is_distributed_model(model: torch.nn.Module) -> bool:
    """True when some parameter is a DTensor (FSDP2 or tensor parallel)."""
    return any(isinstance(p, DTensor) for p in model.parameters())


def native_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> dict[str, Any]:
    """Model (and optimizer) state keyed by parameter name, in the model's own layout: plain
    tensors for replicated models, DTensor shards for FSDP/TP. Optimizer state is keyed by
    parameter name too, so it survives a change of layout."""
    if optimizer is None:
        return {MODEL_KEY: get_model_state_dict(model)}
    msd, osd = get_state_dict(model, optimizer)
    return {MODEL_KEY: msd, OPTIM_KEY: osd}


def _split(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    tensors = {k: v for k, v in state.items() if k in (MODEL_KEY, OPTIM_KEY)}
    if MODEL_KEY not in tensors:
        raise CheckpointError("parallel: the state to save has no 'model' entry (use strategy.state_dicts)")
    extras = {k: v for k, v in state.items() if k not in tensors}
    return tensors, extras


def _is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def write_layout(path: str, fmt: str, strategy: str, mesh: dict[str, int]) -> None:
    """Write ``parallel.json`` (main rank only; callers barrier afterwards)."""
    world = dist.get_world_size() if dist.is_initialized() else 1
    layout = {"format": fmt, "strategy": strategy, "world_size": world, "mesh": mesh}
    atomic_write_text(os.path.join(path, LAYOUT_FILE), json.dumps(layout, indent=2) + "\n", durable=False)


def read_layout(path: str) -> dict[str, Any]:
    """The checkpoint's ``parallel.json``; a :class:`CheckpointError` naming the file when it is
    missing or malformed."""
    file = os.path.join(path, LAYOUT_FILE)
    try:
        with open(file) as f:
            layout = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{file}: missing; {path} is not a checkpoint written by argonne_kit") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{file}: unreadable ({exc})") from None
    if layout.get("format") not in FORMATS:
        raise CheckpointError(f"{file}: format {layout.get('format')!r} is not one of {', '.join(FORMATS)}")
    return layout


def save(state: dict[str, Any], path: str, *, fmt: str, strategy: str, mesh: dict[str, int]) -> None:
    """Write ``state`` (from ``native_state`` plus extras) under ``path`` in format ``fmt``.
    Collective: every rank calls it; it returns when the checkpoint is complete on disk."""
    tensors, extras = _split(state)
    if _is_main():
        os.makedirs(path, exist_ok=True)
    _barrier()
    if fmt == "torch":
        if _is_main():
            # checksummed here, before the rename: the manifest does not read the file again
            save_torch_file(_to_cpu(tensors), os.path.join(path, TORCH_STATE_FILE), durable=True)
    else:
        try:
            with _single_process_quiet():
                dcp.save(tensors, checkpoint_id=path, no_dist=not dist.is_initialized())
        except (Exception, CheckpointException) as exc:  # DCP's (a BaseException) wraps every rank's failure
            if is_disk_full(exc, path):
                raise StorageError(f"cannot write {path}: No space left on device") from None
            raise
    if _is_main():
        save_torch_file(extras, os.path.join(path, EXTRAS_FILE), durable=False)
        write_layout(path, fmt, strategy, mesh)
    _barrier()


def load(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, path: str) -> dict[str, Any]:
    """Load a checkpoint of either format into ``model``/``optimizer`` in their current layout
    and return the extras. Collective when a process group exists. A checkpoint whose keys use
    an earlier layout's names (``blocks.{i}`` for ``model.layers.{i}``) loads through the model's
    ``legacy_key_mapping``."""
    layout = read_layout(path)
    if layout["format"] == "torch":
        blob = safe_torch_load(os.path.join(path, TORCH_STATE_FILE), mmap=True, what="model state")
        current = get_model_state_dict(model).keys()
        renames = _renames_for(model, blob.get(MODEL_KEY, {}).keys(), current, path)
        _apply(model, optimizer, _rename_state(blob, renames), path, full=True)
    else:
        target = native_state(model, optimizer)
        metadata = _read_dcp_metadata(path)
        if optimizer is not None and not any(key.startswith(OPTIM_KEY + ".") for key in metadata):
            raise CheckpointError(f"{path}: holds no optimizer state, but one was asked for")
        prefix = MODEL_KEY + "."
        stored = [key[len(prefix) :] for key in metadata if key.startswith(prefix)]
        renames = _renames_for(model, stored, target[MODEL_KEY].keys(), path)
        # read into a target that carries the stored names, then give it the current ones back
        target = _rename_state(target, {new: old for old, new in renames.items()})
        try:
            with _single_process_quiet():
                dcp.load(target, checkpoint_id=path, no_dist=not dist.is_initialized())
        except (Exception, CheckpointException) as exc:  # DCP's (a BaseException) wraps every rank's failure
            # its text holds each rank's traceback; the last line is the reason
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            raise CheckpointError(f"{path}: does not fit this model: {reason}") from exc
        _apply(model, optimizer, _rename_state(target, renames), path, full=False)
    return safe_torch_load(os.path.join(path, EXTRAS_FILE), what="checkpoint extras")


def _renames_for(model: torch.nn.Module, stored: Iterable[str], current: Iterable[str], path: str) -> dict[str, str]:
    from argonne_kit.model.loading import legacy_key_mapping_of, legacy_renames  # imports transformers

    renames = legacy_renames(stored, set(current), legacy_key_mapping_of(model))
    if renames:
        log.info(
            "checkpoint: %s holds %d parameters under earlier names; loaded by their current names", path, len(renames)
        )
    return renames


def _rename_state(state: dict[str, Any], renames: Mapping[str, str]) -> dict[str, Any]:
    """``state`` (model and optimizer entries) with parameter names renamed; tensors shared."""
    if not renames:
        return state
    out = dict(state)
    if MODEL_KEY in state:
        out[MODEL_KEY] = {renames.get(k, k): v for k, v in state[MODEL_KEY].items()}
    if OPTIM_KEY in state:
        optim = state[OPTIM_KEY]
        out[OPTIM_KEY] = {
            **optim,
            "state": {renames.get(k, k): v for k, v in optim["state"].items()},
            "param_groups": [
                {**group, "params": [renames.get(p, p) for p in group["params"]]} for group in optim["param_groups"]
            ],
        }
    return out


def _apply(model, optimizer, blob: dict[str, Any], path: str, *, full: bool) -> None:
    if optimizer is not None and OPTIM_KEY not in blob:
        raise CheckpointError(f"{path}: holds no optimizer state, but one was asked for")
    # A full (unsharded) state dict is distributed into DTensor parameters by set_state_dict;
    # for a plain model the full dict already is its native form.
    options = StateDictOptions(full_state_dict=full and is_distributed_model(model), strict=True)
    try:
        if optimizer is None:
            set_model_state_dict(model, blob[MODEL_KEY], options=options)
        else:
            set_state_dict(
                model, optimizer, model_state_dict=blob[MODEL_KEY], optim_state_dict=blob[OPTIM_KEY], options=options
            )
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: does not fit this model: {exc}") from exc


@contextlib.contextmanager
def _single_process_quiet():
    """Without a process group DCP reads/writes every shard itself, which is what we want; it
    warns that it is "assuming the intent" each time — silence that one warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def _read_dcp_metadata(path: str) -> dict[str, Any]:
    """The stored (flattened) keys of a DCP checkpoint and their metadata."""
    try:
        return dict(dcp.FileSystemReader(path).read_metadata().state_dict_metadata)
    except Exception as exc:
        raise CheckpointError(f"{os.path.join(path, DCP_METADATA_FILE)}: unreadable ({exc})") from None


def tied_aliases(model: torch.nn.Module) -> dict[str, str]:
    """Parameter names that share storage with an earlier name (the tied LM head → embedding)."""
    first: dict[int, str] = {}
    aliases: dict[str, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in first:
            aliases[name] = first[id(param)]
        else:
            first[id(param)] = name
    return aliases


def full_model_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The full, unsharded model state on the main rank's CPU (empty on other ranks); tied names
    (P9: ``lm_head.weight``) are aliases of the same tensor, as in the unsharded model.
    Collective for sharded models: every rank calls it."""
    # a model's state holds tensors only; torch types the result as any state-dict value
    if is_distributed_model(model):
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = cast(dict[str, torch.Tensor], get_model_state_dict(model, options=options))
    else:
        state = cast(dict[str, torch.Tensor], get_model_state_dict(model)) if _is_main() else {}
        state = {k: v.detach().cpu() for k, v in state.items()}
    if not _is_main():
        return {}
    from argonne_kit.model.loading import strip_wrapper_prefixes

    for alias, source in tied_aliases(model).items():
        alias_key = strip_wrapper_prefixes(alias)
        source_key = strip_wrapper_prefixes(source)
        if source_key in state:
            state[alias_key] = state[source_key]
    return state
