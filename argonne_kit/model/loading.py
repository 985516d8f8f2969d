"""Loading original Argonne training checkpoints into the kit's models (D-22).

``load_original_checkpoint(source, model)`` accepts a ``pretrain.py`` checkpoint
(``checkpoint_step_N.pt`` with ``model_state_dict``), a bare state dict, a ``.safetensors``
file, or the already-loaded dict. It strips the DDP ``module.`` and ``torch.compile``
``_orig_mod.`` prefixes, renames the released key names to the model's (its
``legacy_key_mapping``: ``blocks.{i}`` → ``model.layers.{i}`` and so on), renumbers the pipeline-parallel block keys of Argonne 1.0
(``pipeline_stages.{stage}.{j}.*`` → ``blocks.{i}.*``, original.md §2.3), reconciles FP8-padded vocabulary rows (151,680 ↔ 151,669: extra rows
are trimmed; a padded model keeps its own extra rows), restores the embedding tie, and fails
loudly — naming the keys — when anything is missing or unexpected.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from argonne_kit.errors import CheckpointError

log = logging.getLogger(__name__)

#: Wrapper prefixes added by DDP and torch.compile (in either order, possibly both).
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def read_state_dict(source: str | Path | Mapping) -> dict[str, torch.Tensor]:
    """The model state dict inside ``source`` (path or loaded object), prefixes stripped."""
    obj = source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise CheckpointError(f"{path}: checkpoint file not found")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        else:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except Exception as exc:  # a foreign or damaged file must name itself
                raise CheckpointError(f"{path}: cannot read checkpoint: {exc}") from exc
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{_name(source)}: expected a state dict or a checkpoint dict, got {type(obj).__name__}")
    if "model_state_dict" in obj:
        obj = obj["model_state_dict"]
    tensors = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{_name(source)}: entry {key!r} is a {type(value).__name__}, not a tensor "
                "(not a model state dict; pretrain.py checkpoints keep it under 'model_state_dict')"
            )
        tensors[strip_wrapper_prefixes(key)] = value
    return renumber_pipeline_stages(tensors, _name(source))


PIPELINE_PREFIX = "pipeline_stages."


def renumber_pipeline_stages(state: dict[str, torch.Tensor], name: str = "state dict") -> dict[str, torch.Tensor]:
    """Argonne 1.0's model-parallel script kept its blocks as ``pipeline_stages.{stage}.{j}``
    with ceil(L / stages) blocks per stage (the last may hold fewer); the released modules call
    them ``blocks.{stage · per_stage + j}`` (the original ``convert_model.py`` did the same)."""
    staged: dict[tuple[int, int], list[tuple[str, str]]] = {}  # (stage, j) → [(key, rest of the key)]
    for key in state:
        if key.startswith(PIPELINE_PREFIX):
            stage_name, block_name, rest = key[len(PIPELINE_PREFIX) :].split(".", 2)
            staged.setdefault((int(stage_name), int(block_name)), []).append((key, rest))
    if not staged:
        return state
    per_stage: dict[int, int] = {}
    for stage, j in staged:
        per_stage[stage] = max(per_stage.get(stage, 0), j + 1)
    stages = sorted(per_stage)
    width = per_stage[stages[0]]
    contiguous = stages == list(range(len(stages))) and all(
        (s, j) in staged for s in stages for j in range(per_stage[s])
    )
    equal_sized = all(per_stage[s] == width for s in stages[:-1]) and per_stage[stages[-1]] <= width
    if not (contiguous and equal_sized):
        layout = ", ".join(f"stage {s}: {per_stage[s]} blocks" for s in stages)
        raise CheckpointError(
            f"{name}: pipeline_stages keys do not form contiguous stages of equal size "
            f"(the last may be smaller): {layout}"
        )
    out = {k: v for k, v in state.items() if not k.startswith(PIPELINE_PREFIX)}
    for (stage, j), keys in staged.items():
        for key, rest in keys:
            out[f"blocks.{stage * width + j}.{rest}"] = state[key]
    log.info(
        "checkpoint: %d pipeline stages × %d blocks renumbered to blocks.0–%d",
        len(stages),
        width,
        (len(stages) - 1) * width + per_stage[stages[-1]] - 1,
    )
    return out


def strip_wrapper_prefixes(key: str) -> str:
    """``module._orig_mod.blocks.0…`` → ``blocks.0…``."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                stripped = True
    return key


def convert_legacy_keys(state: dict[str, torch.Tensor], mapping: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """Rename keys by ``mapping`` (regex → replacement; the first pattern that matches wins).
    Keys that already have the current names match no pattern and are kept."""
    compiled = _compile_mapping(mapping)
    return {_rename_key(key, compiled): value for key, value in state.items()}


def legacy_key_mapping_of(model: nn.Module) -> Mapping[str, str]:
    """The key mapping (regex → current name) of the kit's model inside ``model`` (DDP unwrapped);
    empty for any other module."""
    from argonne_kit.model.hf import ArgonneHFMixin  # the model package imports transformers: load on use

    inner = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    return inner.legacy_key_mapping if isinstance(inner, ArgonneHFMixin) else {}


def legacy_renames(stored: Iterable[str], current: Collection[str], mapping: Mapping[str, str]) -> dict[str, str]:
    """``{stored name: current name}`` for every stored key that is not a current name but maps onto
    one: the names of an earlier layout (``blocks.{i}`` for ``model.layers.{i}``) that a
    checkpoint may hold. Empty when the stored names are current."""
    compiled = _compile_mapping(mapping)
    renames = {}
    for key in stored:
        if key in current:
            continue
        renamed = _rename_key(key, compiled)
        if renamed in current:
            renames[key] = renamed
    return renames


def _compile_mapping(mapping: Mapping[str, str]) -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile(pattern), replacement) for pattern, replacement in mapping.items()]


def _rename_key(key: str, compiled: list[tuple[re.Pattern[str], str]]) -> str:
    for pattern, replacement in compiled:
        if pattern.search(key):
            return pattern.sub(replacement, key, count=1)
    return key


def load_original_checkpoint(source: str | Path | Mapping, model: nn.Module) -> dict:
    """Load ``source`` into ``model`` (an Argonne causal LM: its ``embedding_keys`` name the input
    and output embeddings) by name. Returns ``{"loaded": n, "resized": [keys]}``.

    Raises :class:`CheckpointError` naming every missing or unexpected key and every shape that
    cannot be reconciled. The only key allowed to be absent is a tied output embedding. Raises
    TypeError for a model that is not an Argonne causal LM.
    """
    from argonne_kit.model.legacy import ArgonneV1ForCausalLM  # the model package imports transformers
    from argonne_kit.model.modeling import ArgonneForCausalLM

    if not isinstance(model, (ArgonneForCausalLM, ArgonneV1ForCausalLM)):
        raise TypeError(f"original checkpoints load into an Argonne causal LM, not {type(model).__name__}")
    state = convert_legacy_keys(read_state_dict(source), model.legacy_key_mapping)
    expected = model.state_dict()
    input_key, output_key = model.embedding_keys
    tied = output_key if getattr(model.config, "tie_word_embeddings", False) else None
    missing = [k for k in expected if k not in state and k != tied]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_short(unexpected)}")
        raise CheckpointError(f"{_name(source)} does not match {type(model).__name__}: " + "; ".join(parts))

    vocab_keys = {input_key, output_key}
    resized = []
    for key, value in list(state.items()):
        target = expected[key]
        if value.shape == target.shape:
            continue
        if key in vocab_keys and value.shape[1:] == target.shape[1:]:
            state[key] = _fit_rows(value, target)
            resized.append(key)
            log.info(
                "checkpoint: %s has %d vocabulary rows, model has %d; %s",
                key,
                value.shape[0],
                target.shape[0],
                "trimmed" if value.shape[0] > target.shape[0] else "kept the model's extra rows",
            )
            continue
        raise CheckpointError(
            f"{_name(source)}: {key} has shape {tuple(value.shape)}, the model expects {tuple(target.shape)}"
        )
    if tied is not None and tied in state:
        if not torch.equal(state[tied], state[input_key]):
            raise CheckpointError(
                f"{_name(source)}: {tied} differs from {input_key} but the model ties them "
                "(load it into a config with tie_word_embeddings=false)"
            )
        del state[tied]
    model.load_state_dict(state, strict=False)
    model.tie_weights()
    return {"loaded": len(state), "resized": resized}


def _fit_rows(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    rows = min(value.shape[0], target.shape[0])
    out = target.detach().clone()
    out[:rows] = value[:rows].to(out.dtype)
    return out


def _short(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", … (+{len(keys) - limit} more)" if len(keys) > limit else "")


def _name(source) -> str:
    return str(source) if isinstance(source, (str, Path)) else "state dict"
