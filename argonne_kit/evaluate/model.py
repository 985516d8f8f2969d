"""Loading the model to evaluate."""

from __future__ import annotations

from pathlib import Path

import attrs
import torch

from argonne_kit.errors import ArgonneError


@attrs.define
class LoadedModel:
    """A model ready to score, its tokenizer and (when the model carries one) its resolved recipe."""

    model: torch.nn.Module
    tokenizer: object
    resolved: object | None
    path: str


def _load_model(spec: str, device: str = "cpu") -> LoadedModel:
    """MODEL as ``generate`` finds it: a run directory's ``final_model/``, an exported or any
    Hugging Face causal-LM directory, or a Hub id. The one place that turns a MODEL argument into
    a model, so a broader resolver (checkpoints, original ``.pt`` files) can replace it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from argonne_kit.model import register_auto_classes
    from argonne_kit.recipe.diff import RESOLVED_RECIPE_FILE, resolve_any
    from argonne_kit.train.export import FINAL_MODEL_DIR

    register_auto_classes()
    path = Path(spec)
    if (path / FINAL_MODEL_DIR / "config.json").is_file():
        path = path / FINAL_MODEL_DIR
    if not path.exists() and spec.startswith(("/", "./", "../", "~")):
        raise ArgonneError(f"{spec}: not found")
    if path.exists() and not (path / "config.json").is_file():
        raise ArgonneError(f"{spec}: no config.json (expected an exported model, a run directory with "
                           f"{FINAL_MODEL_DIR}/ or a Hub id)")
    source = str(path) if path.exists() else spec
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise ArgonneError(f"{spec}: cannot load the model: {exc}") from None
    resolved = resolve_any(path) if (path / RESOLVED_RECIPE_FILE).is_file() else None
    model.to(device).eval()
    return LoadedModel(model=model, tokenizer=tokenizer, resolved=resolved, path=source)
