"""Export of ``final_model/``: ``save_pretrained`` weights and config, the tokenizer and the
resolved recipe — only after the budget completed and the final checkpoint verified (D-25).

The directory is written under a temporary name and renamed, so a ``final_model/`` that exists
is always complete.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from torch import nn

from argonne_kit.recipe.diff import RESOLVED_RECIPE_FILE

FINAL_MODEL_DIR = "final_model"


def export_final_model(model, tokenizer, run_dir: Path, recipe_toml: str, eos_token_id: int | None = None) -> Path:
    """Write ``run_dir/final_model`` from a plain (unwrapped, unsharded) model; main rank only.
    ``eos_token_id`` overrides the tokenizer's eos (chat stages stop at the chat EOS)."""
    model = trim_padded_vocab(model, len(tokenizer))
    final = Path(run_dir) / FINAL_MODEL_DIR
    tmp = Path(run_dir) / f".tmp-{FINAL_MODEL_DIR}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    eos = eos_token_id if eos_token_id is not None else getattr(tokenizer, "eos_token_id", None)
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


def trim_padded_vocab(model: nn.Module, vocab_size: int) -> nn.Module:
    """The model with its embedding (and head) cut back to ``vocab_size`` rows (the tokenizer's
    length), as the original's export did: rows beyond it — the padding of
    ``model.pad_vocab_to_multiple_of`` that makes the head FP8-eligible — are ids the tokenizer
    never produces and not part of the released model. A model without extra rows is returned as
    it is; otherwise it is rebuilt from its config (plain ``nn.Linear`` modules, even after an FP8
    conversion) and loaded by name, failing on any missing or unexpected key."""
    rows = model.get_input_embeddings().weight.shape[0]  # the embedding holds the (padded) rows
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
        raise RuntimeError(f"export: trimming the padded vocabulary lost keys: missing {missing}, "
                           f"unexpected {unexpected}")
    if config.tie_word_embeddings:
        clean.tie_weights()
    clean.generation_config = model.generation_config
    return clean.eval()


def _vocab_keys(model: nn.Module) -> set[str]:
    """State-dict names of the embedding and the LM head."""
    names = {f"{name}.weight" for name, module in model.named_modules()
             if module is model.get_input_embeddings() or module is model.get_output_embeddings()}
    return names
