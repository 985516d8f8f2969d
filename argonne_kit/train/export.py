"""Export of ``final_model/``: ``save_pretrained`` weights and config, the tokenizer and the
resolved recipe — only after the budget completed and the final checkpoint verified (D-25).

The directory is written under a temporary name and renamed, so a ``final_model/`` that exists
is always complete.
"""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

from argonne_kit.recipe.diff import RESOLVED_RECIPE_FILE

FINAL_MODEL_DIR = "final_model"


def export_final_model(model, tokenizer, run_dir: Path, recipe_toml: str, eos_token_id: int | None = None) -> Path:
    """Write ``run_dir/final_model`` from a plain (unwrapped, unsharded) model; main rank only.
    ``eos_token_id`` overrides the tokenizer's eos (chat stages stop at the chat EOS): the saved
    tokenizer, config and generation config then all name that token, so every consumer (TRL,
    pipelines, ``generate``) stops where the chat template ends a turn."""
    final = Path(run_dir) / FINAL_MODEL_DIR
    tmp = Path(run_dir) / f".tmp-{FINAL_MODEL_DIR}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    eos = eos_token_id if eos_token_id is not None else getattr(tokenizer, "eos_token_id", None)
    if eos is not None and eos != tokenizer.eos_token_id:
        tokenizer = copy.deepcopy(tokenizer)  # the run keeps its own tokenizer unchanged
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos)
    if eos is not None:  # an export without eos never stops generating (D-5)
        model.config.eos_token_id = eos
        model.config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.eos_token_id = eos
            model.generation_config.pad_token_id = model.config.pad_token_id
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    (tmp / RESOLVED_RECIPE_FILE).write_text(recipe_toml)
    old = Path(run_dir) / f".tmp-old-{FINAL_MODEL_DIR}"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final
