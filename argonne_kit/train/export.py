"""Writing a release directory: the one code path behind a run's ``final_model/`` and
``argonne-kit export``.

A release directory holds the weights as safetensors (sharded above ``max_shard_size``, with
``model.safetensors.index.json``), ``config.json`` with the dtype recorded (plus the standalone
modeling files and ``auto_map`` that the model's ``save_pretrained`` writes),
``generation_config.json``, the tokenizer with its chat template, ``resolved_recipe.toml`` and a
model card ``README.md`` (with ``loss.png`` when the run's metrics can be plotted).

The run exports only after the budget completed and the final checkpoint verified (D-25). The
directory is written under a temporary name and renamed, so one that exists is always complete.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from argonne_kit.contracts.parallel import PRECISION_DTYPES
from argonne_kit.recipe.diff import RESOLVED_RECIPE_FILE
from argonne_kit.release.formats import DEFAULT_MAX_SHARD_SIZE, EXPORT_DTYPE_NAMES
from argonne_kit.safe_io import replace_dir

if TYPE_CHECKING:
    from transformers import PreTrainedModel

FINAL_MODEL_DIR = "final_model"
#: ``--dtype`` names → the dtype the weights are stored in.
EXPORT_DTYPES = {name: PRECISION_DTYPES[name] for name in EXPORT_DTYPE_NAMES}


def export_model(
    model: PreTrainedModel,
    tokenizer,
    out: Path,
    *,
    recipe_toml: str | None,
    eos_token_id: int | None = None,
    dtype: str = "fp32",
    max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE,
    run_dir: Path | None = None,
    up_to_step: int | None = None,
) -> Path:
    """Write ``out`` from a plain (unwrapped, unsharded) model; main rank only.

    ``eos_token_id`` overrides the tokenizer's eos (chat models stop at the chat EOS, D-5).
    ``dtype`` (``fp32``/``bf16``) casts the model in place before saving. ``run_dir`` is the run
    whose ``metrics.jsonl`` gives the card its steps, tokens, losses and plot (None: the card
    describes the recipe only); ``up_to_step`` stops there (an export of an earlier checkpoint)."""
    from argonne_kit.release.card import write_model_card

    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"dtype {dtype!r}: expected one of {', '.join(EXPORT_DTYPES)}")
    out = Path(out)
    tmp = out.parent / f".tmp-{out.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model = trim_padded_vocab(model, len(tokenizer))
    if eos_token_id is not None and eos_token_id != tokenizer.eos_token_id:
        # tokenizer, config, generation config and chat template all name the chat EOS (D-5)
        tokenizer = copy.deepcopy(tokenizer)  # the caller keeps its own tokenizer unchanged
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos_token_id)
    set_release_token_ids(model, tokenizer, eos_token_id)
    # typed as nn.Module.to: transformers' functools.wraps on PreTrainedModel.to hides its signature
    module: torch.nn.Module = model
    module.to(EXPORT_DTYPES[dtype])
    model.save_pretrained(str(tmp), safe_serialization=True, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(str(tmp))
    if recipe_toml is not None:
        (tmp / RESOLVED_RECIPE_FILE).write_text(recipe_toml)  # the whole directory is renamed into place
    write_model_card(
        tmp,
        model,
        recipe_toml,
        run_dir,
        name=out.name if out.name != FINAL_MODEL_DIR else (run_dir.name if run_dir is not None else out.name),
        up_to_step=up_to_step,
    )
    replace_dir(tmp, out)
    return out


def export_final_model(model, tokenizer, run_dir: Path, recipe_toml: str, eos_token_id: int | None = None) -> Path:
    """Write ``run_dir/final_model`` (fp32, default sharding) with :func:`export_model`."""
    return export_model(
        model,
        tokenizer,
        Path(run_dir) / FINAL_MODEL_DIR,
        recipe_toml=recipe_toml,
        eos_token_id=eos_token_id,
        run_dir=Path(run_dir),
    )


def set_release_token_ids(model, tokenizer, eos_token_id: int | None = None) -> None:
    """eos/pad/bos in ``config`` and ``generation_config`` from the tokenizer (``eos_token_id``
    wins over its eos); pad falls back to eos. An export without eos never stops (D-5)."""
    eos = eos_token_id if eos_token_id is not None else tokenizer.eos_token_id
    if eos is None:
        return
    config = model.config
    config.eos_token_id = eos
    config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    config.bos_token_id = tokenizer.bos_token_id
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        generation.eos_token_id = eos
        generation.pad_token_id = config.pad_token_id
        generation.bos_token_id = config.bos_token_id


def release_eos_token_id(resolved, tokenizer) -> int | None:
    """The eos a release of ``resolved``'s stage stops at: the chat EOS when its objective trains
    a chat model, else None (the tokenizer's own eos)."""
    from argonne_kit.probe import chat_eos_token_id
    from argonne_kit.registry import get_registry

    section = resolved.recipe.objective
    objective = get_registry().get("objective", section.kind).factory(section.config)
    return chat_eos_token_id(tokenizer) if objective.chat_model else None


def trim_padded_vocab(model: PreTrainedModel, vocab_size: int) -> PreTrainedModel:
    """The model with its embedding (and head) cut back to ``vocab_size`` rows (the tokenizer's
    length), as the original's export did: rows beyond it — the padding of
    ``model.pad_vocab_to_multiple_of`` that makes the head FP8-eligible — are ids the tokenizer
    never produces and not part of the released model. A model without extra rows is returned as
    it is; otherwise it is rebuilt from its config (plain ``nn.Linear`` modules, even after an FP8
    conversion) and loaded by name, failing on any missing or unexpected key."""
    embedding = model.get_input_embeddings().weight
    assert isinstance(embedding, torch.Tensor)  # an nn.Embedding's
    rows = embedding.shape[0]  # the embedding holds the (padded) rows
    if rows <= vocab_size:
        return model
    config = model.config.__class__.from_dict(model.config.to_dict())
    config.vocab_size = vocab_size
    clean = model.__class__(config)
    state = {}
    for key, value in model.state_dict().items():
        value = value.detach()
        if value.dim() >= 1 and value.shape[0] == rows and key in _vocab_keys(model):
            value = value[:vocab_size]
        state[key] = value
    tied = set(getattr(clean, "_tied_weights_keys", None) or {}) if config.tie_word_embeddings else set()
    missing, unexpected = clean.load_state_dict(state, strict=False)
    missing = [key for key in missing if key not in tied]
    if missing or unexpected:
        raise RuntimeError(
            f"export: trimming the padded vocabulary lost keys: missing {missing}, unexpected {unexpected}"
        )
    if config.tie_word_embeddings:
        clean.tie_weights()
    clean.generation_config = model.generation_config
    return clean.eval()


def _vocab_keys(model: PreTrainedModel) -> set[str]:
    """State-dict names of the embedding and the LM head."""
    names = {
        f"{name}.weight"
        for name, module in model.named_modules()
        if module is model.get_input_embeddings() or module is model.get_output_embeddings()
    }
    return names
