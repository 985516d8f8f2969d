"""The checkpoint manager shared by every stage (D-8, D-9, D-14, D-23).

A checkpoint is a directory ``RUN_DIR/checkpoints/step_<global step, 8 digits>/`` holding

- the model and optimizer tensors, written by the parallel strategy (``strategy.save``) in its
  own format (one file, safetensors or a sharded DCP directory),
- ``trainer_state_rank<r>.pt`` per process: counters, schedule position, RNG states and the
  data-source position (each data-parallel rank reads its own data),
- ``resolved_recipe.toml`` (so ``argonne-kit diff`` accepts checkpoints, D-1),
- ``checkpoint.json``, the manifest written last: step, counters and the expected tensor count.

A save goes through gates, in order, and the previous checkpoint is untouched until the new one
has passed all of them:

1. refuse non-finite weights (the first offending names are reported);
2. write everything under a temporary directory ``.tmp-step_<N>``;
3. verify by reading back: manifest keys and step, every rank's trainer state, the tensor count,
   and finite values in a sample of tensors spread across the whole checkpoint (forcing real
   reads through the files);
4. atomic rename to ``step_<N>``; update ``latest`` atomically;
5. retention: keep the newest ``keep_last`` verified checkpoints plus every multiple of
   ``keep_every_steps``; each deletion is logged; the newest verified one is never deleted.

Temporary directories left by a killed save are collected when a run starts (the run-directory
lock guarantees no live writer owns them). A temporary name is never taken for a checkpoint:
only ``step_<N>`` directories with a manifest count.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from argonne_kit.errors import CheckpointError
from argonne_kit.recipe.diff import RESOLVED_RECIPE_FILE

CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
MANIFEST_FILE = "checkpoint.json"
TMP_PREFIX = ".tmp-"
STEP_RE = re.compile(r"^step_(\d{8,})$")
#: Files the manager writes itself (everything else in a checkpoint belongs to the strategy).
OWN_FILES = re.compile(r"^(checkpoint\.json|resolved_recipe\.toml|trainer_state_rank\d+\.pt)$")
MANIFEST_KEYS = ("format", "step", "tokens", "tensor_count", "unique_tensor_count", "world_size", "saved_at")
FORMAT = "argonne_kit.checkpoint/1"
#: Tensors read in full during verification besides first/last/largest.
VERIFY_SAMPLES = 8


def step_dir_name(step: int) -> str:
    return f"step_{step:08d}"


def trainer_state_file(rank: int) -> str:
    return f"trainer_state_rank{rank}.pt"


class CheckpointManager:
    """Saves, verifies, lists, prunes and loads the checkpoints of one run directory.

    Strategy-agnostic: tensors go through ``strategy.save``/``strategy.load``; the manager owns
    the gates, the layout, the trainer state and retention. Every rank calls :meth:`save` and
    :meth:`load`; only the main rank touches the file system outside the strategy's writes.
    """

    def __init__(self, run_dir: str | Path, strategy, *, keep_last: int = 1,
                 keep_every_steps: int | None = None, log: Callable[[str], None] = print):
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / CHECKPOINTS_DIR
        self.strategy = strategy
        self.keep_last = keep_last
        self.keep_every_steps = keep_every_steps
        self.log = log

    # -- listing ---------------------------------------------------------------------------
    def checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints (renamed ``step_<N>`` directories with a manifest), oldest first."""
        return list_checkpoints(self.dir)

    def latest(self) -> Path | None:
        """The newest complete checkpoint that passes a read-back check (D-14: a damaged or
        incomplete directory is skipped, never resumed from)."""
        for _step, path in reversed(self.checkpoints()):
            try:
                verify_checkpoint(path)
                return path
            except CheckpointError as exc:
                self.log(f"checkpoint: skipping {path.name}: {exc}")
        return None

    def collect_stale(self) -> None:
        """Remove temporary directories left by interrupted saves (main rank; the run lock
        guarantees they have no live writer)."""
        if not self.strategy.is_main or not self.dir.is_dir():
            return
        for entry in sorted(self.dir.iterdir()):
            if entry.name.startswith(TMP_PREFIX):
                self.log(f"checkpoint: removing stale temporary {entry.name} (interrupted save)")
                _remove(entry)

    # -- saving ----------------------------------------------------------------------------
    def save(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, tokens: int,
             trainer_state: dict[str, Any], recipe_toml: str) -> Path | None:
        """Save through every gate; the new checkpoint's path, or None when a gate refused it
        (the reason is logged; the previous checkpoints are untouched)."""
        strategy = self.strategy
        bad = nonfinite_parameters(strategy.unwrap(model))
        flag = torch.tensor([1.0 if bad else 0.0], device=strategy.device)
        strategy.all_reduce_max(flag)
        if flag.item() > 0:
            where = f": {', '.join(bad)}" if bad else " (on another rank)"
            self.log(f"checkpoint: REFUSED step {step}: non-finite weights{where}; "
                     f"previous checkpoint kept")
            return None

        final = self.dir / step_dir_name(step)
        tmp = self.dir / f"{TMP_PREFIX}{final.name}"
        if strategy.is_main:
            self.dir.mkdir(parents=True, exist_ok=True)
            _remove(tmp)
            tmp.mkdir()
        strategy.barrier()

        state = strategy.state_dicts(model, optimizer)
        leaves, unique = count_tensors(state)
        strategy.save(state, str(tmp))
        torch.save(trainer_state, tmp / trainer_state_file(strategy.rank))
        strategy.barrier()

        error = None
        if strategy.is_main:
            (tmp / RESOLVED_RECIPE_FILE).write_text(recipe_toml)
            manifest = {"format": FORMAT, "step": step, "tokens": tokens, "tensor_count": leaves,
                        "unique_tensor_count": unique, "world_size": strategy.world_size,
                        "saved_at": time.time()}
            _write_json_durably(tmp / MANIFEST_FILE, manifest)
            try:
                verify_checkpoint(tmp, expect_step=step)
                strategy.verify(str(tmp))  # the strategy's own format check (contract default: none)
            except CheckpointError as exc:
                error = str(exc)
        error = strategy.broadcast_object(error)
        if error is not None:
            if strategy.is_main:
                _remove(tmp)
            self.log(f"checkpoint: REFUSED step {step}: read-back verification failed: {error}; "
                     f"previous checkpoint kept")
            strategy.barrier()
            return None

        if strategy.is_main:
            _fsync_dir(tmp)
            if final.exists():  # same step saved before (a resume from an older checkpoint)
                old = self.dir / f"{TMP_PREFIX}old-{final.name}"
                _remove(old)
                os.replace(final, old)
                os.replace(tmp, final)
                _remove(old)
            else:
                os.replace(tmp, final)
            _fsync_dir(self.dir)
            write_latest(self.dir, final.name)
            self.prune(keep=final)
        strategy.barrier()
        return final

    def prune(self, keep: Path) -> None:
        """Apply the retention rule; ``keep`` (the checkpoint just verified) always survives."""
        complete = self.checkpoints()
        if not complete:
            return
        newest = {path for _s, path in complete[-self.keep_last:]}
        for step, path in complete:
            if path == keep or path in newest:
                continue
            if self.keep_every_steps and step % self.keep_every_steps == 0:
                continue
            rule = f"keep_last={self.keep_last}" + (
                f", keep_every_steps={self.keep_every_steps}" if self.keep_every_steps else "")
            self.log(f"checkpoint: deleting {path.name} (retention: {rule})")
            # renamed first, so a kill mid-deletion leaves a temporary (collected at the next
            # start), never a half-deleted directory that still looks like a checkpoint
            doomed = self.dir / f"{TMP_PREFIX}delete-{path.name}"
            _remove(doomed)
            os.replace(path, doomed)
            _remove(doomed)

    # -- loading ---------------------------------------------------------------------------
    def load(self, path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
             *, with_trainer_state: bool = True) -> dict[str, Any]:
        """Load model (and optimizer) through the strategy, and this rank's trainer state."""
        path = Path(path)
        manifest = read_manifest(path)
        self.strategy.load(model, optimizer, str(path))
        if not with_trainer_state:
            return {"manifest": manifest}
        state = load_trainer_state(path, self.strategy.rank, manifest)
        state["manifest"] = manifest
        return state


# -- helpers usable without a manager (resume discovery, init chaining, tests) ----------------

def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        match = STEP_RE.match(entry.name)
        if match and entry.is_dir() and (entry / MANIFEST_FILE).is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def is_checkpoint(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / MANIFEST_FILE).is_file()


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((Path(path) / MANIFEST_FILE).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not a checkpoint (no {MANIFEST_FILE})") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}/{MANIFEST_FILE}: unreadable: {exc}") from None
    missing = [k for k in MANIFEST_KEYS if k not in manifest]
    if missing or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path}/{MANIFEST_FILE}: missing keys {missing} or unknown format "
                              f"{manifest.get('format')!r}")
    return manifest


def load_trainer_state(path: Path, rank: int, manifest: dict[str, Any]) -> dict[str, Any]:
    file = Path(path) / trainer_state_file(rank)
    if not file.is_file():
        raise CheckpointError(
            f"{path}: no trainer state for rank {rank}: the checkpoint was written by "
            f"{manifest['world_size']} processes; resume it with the same number of processes "
            f"or chain from it with [init] carry = \"weights\"")
    try:
        return torch.load(file, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or corrupt file
        raise CheckpointError(f"{file}: unreadable trainer state: {exc}") from None


def verify_checkpoint(path: Path, expect_step: int | None = None) -> dict[str, Any]:
    """Read a checkpoint back: manifest keys and step, every rank's trainer state, the tensor
    count and finite values in a sample spread across all tensor files. Raises
    :class:`CheckpointError` naming what is wrong; returns the manifest."""
    path = Path(path)
    manifest = read_manifest(path)
    if expect_step is not None and manifest["step"] != expect_step:
        raise CheckpointError(f"{path}: manifest step {manifest['step']} != {expect_step}")
    for rank in range(manifest["world_size"]):
        state = load_trainer_state(path, rank, manifest)
        if state.get("global_step") != manifest["step"]:
            raise CheckpointError(f"{path}: rank {rank} trainer state is for step "
                                  f"{state.get('global_step')}, manifest says {manifest['step']}")
    if not (path / RESOLVED_RECIPE_FILE).is_file():
        raise CheckpointError(f"{path}: {RESOLVED_RECIPE_FILE} missing")
    tensors = list(iter_saved_tensors(path))
    low, high = manifest["unique_tensor_count"], manifest["tensor_count"]
    if not low <= len(tensors) <= high:
        raise CheckpointError(f"{path}: found {len(tensors)} tensors, expected "
                              f"{low if low == high else f'{low}…{high}'}")
    for name, load in sample_spread(tensors):
        tensor = load()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: tensor {name} has non-finite values")
    return manifest


def sample_spread(tensors: list[tuple[str, Callable[[], torch.Tensor], int]]):
    """First, last, largest and :data:`VERIFY_SAMPLES` evenly spaced tensors (D-9: the old gate
    only ever read the two tied embedding tensors)."""
    if not tensors:
        return []
    n = len(tensors)
    picks = {0, n - 1, max(range(n), key=lambda i: tensors[i][2])}
    picks |= {round(i * (n - 1) / (VERIFY_SAMPLES - 1)) for i in range(VERIFY_SAMPLES)}
    return [(tensors[i][0], tensors[i][1]) for i in sorted(picks)]


def iter_saved_tensors(path: Path) -> Iterator[tuple[str, Callable[[], torch.Tensor], int]]:
    """Every tensor the strategy wrote under ``path`` as ``(name, loader, numel)``, whatever the
    format: ``torch.save`` files, safetensors files or torch.distributed.checkpoint directories."""
    path = Path(path)
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if OWN_FILES.match(rel):
            continue
        if file.name == ".metadata":
            yield from _dcp_tensors(file.parent)
        elif file.suffix == ".safetensors":
            yield from _safetensors_tensors(file, rel)
        elif file.suffix in (".pt", ".pth", ".bin"):
            yield from _torch_file_tensors(file, rel)


def _torch_file_tensors(file: Path, rel: str):
    try:
        obj = torch.load(file, map_location="cpu", mmap=True, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{file}: unreadable: {exc}") from None
    for name, tensor in _tensor_leaves(obj, rel):
        yield name, (lambda t=tensor: t.clone()), tensor.numel()


def _safetensors_tensors(file: Path, rel: str):
    from safetensors import safe_open

    try:
        handle = safe_open(str(file), framework="pt")
        keys = list(handle.keys())
    except Exception as exc:
        raise CheckpointError(f"{file}: unreadable: {exc}") from None
    for key in keys:
        numel = math.prod(handle.get_slice(key).get_shape())
        yield f"{rel}:{key}", (lambda k=key: _read_safetensor(handle, file, k)), numel


def _read_safetensor(handle, file, key):
    try:
        return handle.get_tensor(key)
    except Exception as exc:
        raise CheckpointError(f"{file}: tensor {key} unreadable: {exc}") from None


def _dcp_tensors(directory: Path):
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    try:
        metadata = dcp.FileSystemReader(str(directory)).read_metadata()
    except Exception as exc:
        raise CheckpointError(f"{directory}: unreadable checkpoint metadata: {exc}") from None
    for key, meta in metadata.state_dict_metadata.items():
        if isinstance(meta, TensorStorageMetadata):
            yield key, (lambda k=key, m=meta: _read_dcp_tensor(directory, k, m)), math.prod(meta.size)


def _read_dcp_tensor(directory: Path, key: str, meta) -> torch.Tensor:
    import torch.distributed.checkpoint as dcp

    out = {key: torch.empty(meta.size, dtype=meta.properties.dtype)}
    try:
        dcp.load(out, checkpoint_id=str(directory), no_dist=True)
    except Exception as exc:
        raise CheckpointError(f"{directory}: tensor {key} unreadable: {exc}") from None
    return out[key]


def _tensor_leaves(obj: Any, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _tensor_leaves(value, f"{prefix}.{key}")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _tensor_leaves(value, f"{prefix}.{i}")


def count_tensors(state: Any) -> tuple[int, int]:
    """(tensor leaves, distinct storages) of a nested state: a tied weight is one storage but
    two keys, and formats differ in whether they write it twice."""
    leaves = list(_tensor_leaves(state, ""))
    storages = set()
    for _name, tensor in leaves:
        local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
        try:
            storages.add((local.untyped_storage().data_ptr(), local.storage_offset(), tuple(local.shape)))
        except RuntimeError:  # tensors without storage (meta/fake) count as distinct
            storages.add(id(local))
    return len(leaves), len(storages)


def nonfinite_parameters(model: torch.nn.Module, limit: int = 5) -> list[str]:
    """Names of the first ``limit`` parameters holding NaN/Inf on this rank (one host sync)."""
    named = [(n, p.to_local() if hasattr(p, "to_local") else p) for n, p in model.named_parameters()]
    named = [(n, p) for n, p in named if p.numel()]
    if not named:
        return []
    flags = torch.stack([torch.isfinite(p.detach()).all() for _n, p in named]).cpu()
    return [named[i][0] for i in (~flags).nonzero().flatten().tolist()[:limit]]


def write_latest(directory: Path, name: str) -> None:
    """Point ``latest`` at ``name`` atomically (temporary file + rename)."""
    tmp = directory / f"{TMP_PREFIX}{LATEST_FILE}"
    with open(tmp, "w") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / LATEST_FILE)


def _write_json_durably(path: Path, data: dict) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
