"""The release audit: the invariants a published model directory must hold (D-4, D-5, D-19).

Each check returns :class:`Problem` lines; a clean release has none. The checks:

- ``shapes`` — every tensor the config implies is stored with the shape the config implies, and
  nothing else is stored;
- ``vocab`` — ``vocab_size`` equals the tokenizer's length (no padded rows left);
- ``window`` — the attention window the config switches on is the one the model was trained with
  (the resolved recipe says; without a recipe an advertised window is unconfirmed: the 3.0/3.5
  releases advertised a 256-token window that no pretrain ever ran);
- ``special-ids`` — eos/bos/pad agree across the tokenizer, ``config.json``,
  ``generation_config.json`` and the chat template (a chat model stops at the end-of-turn token);
- ``tied`` — tied embeddings are stored once;
- ``aliases`` — no legacy alias keys (``n_embd``, ``n_layer``, ``n_head``, ``block_size``);
- ``dtype`` — the dtype is recorded and is the weights' dtype;
- ``auto_map`` — present, its modeling files shipped, and (``load_check``) the model loads and
  greedily generates non-empty, finite output in a clean Python process that cannot import
  argonne_kit.

:func:`fix_release` writes a normalised copy through the export code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import attrs

from argonne_kit.errors import CheckpointError

ALIASES = ("n_embd", "n_layer", "n_head", "block_size")
INDEX_FILE = "model.safetensors.index.json"
#: Seconds the clean-process load may take.
LOAD_TIMEOUT_S = 300

CLEAN_LOAD_SCRIPT = r"""
import importlib.abc, json, sys

class NoKit(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "argonne_kit":  # the built-in plugins import it too
            raise ImportError(f"{name}: blocked, a release must load without argonne_kit")
        return None

sys.meta_path.insert(0, NoKit())
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

directory = sys.argv[1]
tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=True)  # it reads config.json's auto_map
model = AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=True, dtype=torch.float32).eval()
ids = tokenizer("Once upon a time", return_tensors="pt").input_ids
with torch.no_grad():
    logits = model(input_ids=ids).logits
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
new = out[0, ids.shape[1]:]
print(json.dumps({"finite": bool(torch.isfinite(logits).all()), "new_tokens": int(new.numel()),
                  "module": type(model).__module__, "text": tokenizer.decode(new)}))
"""


@attrs.frozen
class Problem:
    """One broken invariant: ``check`` is its short name (see the module doc)."""

    check: str
    message: str

    def line(self, directory: Path | str) -> str:
        return f"{directory}: {self.check}: {self.message}"


@attrs.define
class Release:
    """What the checks read from a release directory."""

    directory: Path
    config: dict[str, Any]
    generation: dict[str, Any] | None
    tensors: dict[str, tuple[tuple[int, ...], str]]
    """name → (shape, safetensors dtype) of every stored tensor."""
    tokenizer: Any
    recipe: Any
    """The resolved recipe (None when the release has none)."""

    @classmethod
    def read(cls, directory: Path) -> Release:
        from transformers import AutoTokenizer

        from argonne_kit.model_source import RESOLVED_RECIPE_FILE
        from argonne_kit.recipe.diff import resolve_any

        directory = Path(directory)
        config = _json(directory / "config.json")
        if config is None:
            raise CheckpointError(f"{directory}: no config.json (not a model directory)")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(directory))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{directory}: cannot load its tokenizer: {exc}") from None
        recipe_file = directory / RESOLVED_RECIPE_FILE
        recipe = resolve_any(recipe_file) if recipe_file.is_file() else None
        return cls(
            directory, config, _json(directory / "generation_config.json"), stored_tensors(directory), tokenizer, recipe
        )

    def model_config(self):
        """The config as the kit's config class (legacy aliases resolved, defaults applied)."""
        from transformers import AutoConfig

        from argonne_kit.model import register_auto_classes

        register_auto_classes()
        fields = {k: v for k, v in self.config.items() if k not in ("auto_map", "architectures")}
        return AutoConfig.for_model(**fields)

    def chat_eos(self) -> int | None:
        from argonne_kit.probe import chat_eos_token_id

        return chat_eos_token_id(self.tokenizer) if getattr(self.tokenizer, "chat_template", None) else None

    def trains_chat_model(self) -> bool | None:
        """Whether the recorded stage trained a chat model (None: no recipe to say)."""
        if self.recipe is None:
            return None
        from argonne_kit.train.export import release_eos_token_id

        return release_eos_token_id(self.recipe, self.tokenizer) is not None


def stored_tensors(directory: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """name → (shape, dtype) of every tensor in the directory's safetensors (index or single file),
    read from the headers only."""
    from safetensors import safe_open

    index = _json(directory / INDEX_FILE)
    files = (
        sorted(set(index["weight_map"].values()))
        if index
        else [p.name for p in sorted(directory.glob("*.safetensors"))]
    )
    if not files:
        raise CheckpointError(f"{directory}: no .safetensors weights")
    tensors = {}
    for name in files:
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory / INDEX_FILE}: lists {name}, which is missing")
        with safe_open(str(directory / name), framework="pt") as handle:
            names = handle.keys()
            for key in names:
                piece = handle.get_slice(key)
                tensors[key] = (tuple(piece.get_shape()), piece.get_dtype())
    return tensors


def audit_release(directory: Path, *, load_check: bool = True) -> list[Problem]:
    """Every broken invariant of the release in ``directory`` (empty: clean). ``load_check``
    also loads and runs it in a clean process (seconds; skipped when ``auto_map`` is absent)."""
    release = Release.read(Path(directory))
    problems: list[Problem] = []
    for check in (
        check_shapes,
        check_vocab,
        check_window,
        check_special_ids,
        check_aliases,
        check_dtype,
        check_auto_map,
    ):
        problems += check(release)
    if load_check and not any(p.check == "auto_map" for p in problems):
        problems += check_clean_load(release.directory)
    return problems


def meta_model(release: Release):
    """The model the release's config builds, on the meta device (shapes only, no memory)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(release.model_config())


def output_embedding_key(model) -> str | None:
    """The state-dict key of the model's output embedding (LM head) weight."""
    head = model.get_output_embeddings()
    return next((f"{name}.weight" for name, module in model.named_modules() if module is head), None)


def check_shapes(release: Release) -> list[Problem]:
    """Stored tensors against the shapes the config implies; ``tied`` problems for the head."""
    try:
        model = meta_model(release)
    except (ValueError, TypeError) as exc:
        return [Problem("shapes", f"config.json does not build a model: {exc}")]
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    head = output_embedding_key(model)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    problems = []
    for key, shape in expected.items():
        if key == head and tied:
            if key in release.tensors:
                problems.append(
                    Problem(
                        "tied",
                        f"{key} is stored although tie_word_embeddings = true (tied embeddings must be stored once)",
                    )
                )
            continue
        if key not in release.tensors:
            problems.append(Problem("shapes", f"{key} is missing from the weights"))
        elif release.tensors[key][0] != shape:
            problems.append(
                Problem(
                    "shapes", f"{key} is stored as {list(release.tensors[key][0])}, the config implies {list(shape)}"
                )
            )
    for key in release.tensors:
        if key not in expected:
            problems.append(Problem("shapes", f"{key} is stored but the config builds no such tensor"))
    return problems


def check_vocab(release: Release) -> list[Problem]:
    vocab, tokens = release.config.get("vocab_size"), len(release.tokenizer)
    if vocab != tokens:
        return [
            Problem(
                "vocab",
                f"config.json vocab_size = {vocab} but the tokenizer has {tokens} tokens"
                + (" (padded rows left in)" if isinstance(vocab, int) and vocab > tokens else ""),
            )
        ]
    return []


def _window(mapping: dict[str, Any]) -> int | None:
    window = mapping.get("local_attention_window")
    return window if mapping.get("interleaved_local_attention") and window and window > 0 else None


def check_window(release: Release) -> list[Problem]:
    if release.config.get("model_type") != "argonne2":
        return []
    ours = _window(release.config)
    if release.recipe is None:
        if ours is None:
            return []
        return [
            Problem(
                "window",
                f"config.json turns on a {ours}-token window on every other layer, and no "
                f"resolved recipe confirms the model was trained with it",
            )
        ]
    trained = _window(release.recipe.to_dict().get("model", {}))
    if ours != trained:
        return [
            Problem(
                "window",
                f"config.json attention window {ours or 'off'}, but the model was trained "
                f"with {trained or 'no window'} (resolved recipe)",
            )
        ]
    return []


def expected_eos(release: Release) -> int | None:
    """The eos a correct release of this model stops at."""
    chat = release.trains_chat_model()
    chat_eos = release.chat_eos()
    if chat:
        return chat_eos
    if chat is None and release.config.get("eos_token_id") in (chat_eos, release.tokenizer.eos_token_id):
        return release.config.get("eos_token_id")
    return release.tokenizer.eos_token_id


def check_special_ids(release: Release) -> list[Problem]:
    config, generation, tokenizer = release.config, release.generation, release.tokenizer
    problems = []
    eos, want = config.get("eos_token_id"), expected_eos(release)
    if eos is None:
        problems.append(Problem("special-ids", "config.json eos_token_id is null: generation never stops"))
    elif eos != want:
        chat = release.trains_chat_model()
        what = (
            "the chat template's end-of-turn token"
            if chat
            else "the tokenizer's eos or the chat template's end-of-turn token"
            if chat is None
            else "the tokenizer's eos"
        )
        problems.append(Problem("special-ids", f"config.json eos_token_id = {eos}, expected {want} ({what})"))
    pad = config.get("pad_token_id")
    if pad is None:
        problems.append(Problem("special-ids", "config.json pad_token_id is null"))
    elif tokenizer.pad_token_id is not None and pad != tokenizer.pad_token_id:
        problems.append(
            Problem("special-ids", f"config.json pad_token_id = {pad}, the tokenizer's is {tokenizer.pad_token_id}")
        )
    bos = config.get("bos_token_id")
    if bos != tokenizer.bos_token_id and not (bos is None or tokenizer.bos_token_id is None):
        problems.append(
            Problem("special-ids", f"config.json bos_token_id = {bos}, the tokenizer's is {tokenizer.bos_token_id}")
        )
    if generation is None:
        problems.append(Problem("special-ids", "generation_config.json is missing"))
        return problems
    for key in ("eos_token_id", "pad_token_id", "bos_token_id"):
        if generation.get(key) != config.get(key):
            problems.append(
                Problem(
                    "special-ids",
                    f"generation_config.json {key} = {generation.get(key)} but config.json says {config.get(key)}",
                )
            )
    return problems


def check_aliases(release: Release) -> list[Problem]:
    if release.config.get("model_type") != "argonne2":  # the 1.x field names are the aliases
        return []
    return [
        Problem(
            "aliases",
            f"config.json has the legacy alias {key!r} (= {release.config[key]}); a stale alias "
            f"overrides the real field in older loaders",
        )
        for key in ALIASES
        if key in release.config
    ]


SAFETENSORS_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64"}


def check_dtype(release: Release) -> list[Problem]:
    recorded = {release.config[k] for k in ("dtype", "torch_dtype") if release.config.get(k) is not None}
    stored = {SAFETENSORS_DTYPES[d] for _s, d in release.tensors.values() if d in SAFETENSORS_DTYPES}
    if not recorded:
        return [Problem("dtype", f"config.json records no dtype (weights are {', '.join(sorted(stored))})")]
    if len(recorded) > 1:
        return [Problem("dtype", f"config.json dtype and torch_dtype disagree: {sorted(recorded)}")]
    if stored and recorded != stored:
        return [Problem("dtype", f"config.json records {recorded.pop()}, the weights are {', '.join(sorted(stored))}")]
    return []


def check_auto_map(release: Release) -> list[Problem]:
    auto_map = release.config.get("auto_map")
    if not auto_map:
        return [Problem("auto_map", "config.json has no auto_map: the model does not load without argonne_kit")]
    problems = []
    for target in sorted(set(auto_map.values())):
        module = target.split("--")[-1].rsplit(".", 1)[0]
        if not (release.directory / f"{module}.py").is_file():
            problems.append(Problem("auto_map", f"auto_map names {target} but {module}.py is not shipped"))
    return problems


def check_clean_load(directory: Path) -> list[Problem]:
    """Load and greedily generate in a fresh interpreter that cannot import argonne_kit."""
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": scratch, "PYTHONPATH": ""}
        try:
            done = subprocess.run(
                [sys.executable, "-I", "-c", CLEAN_LOAD_SCRIPT, str(Path(directory).resolve())],
                cwd=scratch,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=LOAD_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return [Problem("load", f"loading and generating took over {LOAD_TIMEOUT_S} s in a clean process")]
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return [Problem("load", f"does not load without argonne_kit: {reason}")]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not result["finite"]:
        return [Problem("load", "non-finite logits in a clean process")]
    if result["new_tokens"] < 1:
        return [Problem("load", "greedy generation produced no token in a clean process")]
    return []


def fix_release(directory: Path, out: Path) -> list[Problem]:
    """Write a normalised copy of the release to ``out`` through the export code: legacy aliases
    dropped, vocabulary trimmed to the tokenizer, the window set to what the model was trained
    with (off without a recipe), eos/pad/bos made consistent, tied embeddings stored once, the
    dtype recorded. Returns the problems the copy still has (without the clean-process load;
    audit ``out`` for that). Shapes that disagree with the config cannot be fixed: that raises."""
    from transformers import AutoModelForCausalLM

    from argonne_kit.model import load_original_checkpoint
    from argonne_kit.train.export import export_model
    from argonne_kit.train.init_from import read_hf_weights

    release = Release.read(Path(directory))
    config = release.model_config()
    config.vocab_size = len(release.tokenizer)
    if release.config.get("model_type") == "argonne2":
        trained = _window(release.recipe.to_dict().get("model", {})) if release.recipe is not None else None
        config.interleaved_local_attention = trained is not None
        config.local_attention_window = trained
    model = AutoModelForCausalLM.from_config(config)
    load_original_checkpoint(read_hf_weights(release.directory), model)
    stored = {d for _s, d in release.tensors.values() if d in ("F32", "BF16")}
    dtype = "bf16" if stored == {"BF16"} else "fp32"
    recipe_file = release.directory / "resolved_recipe.toml"
    export_model(
        model,
        release.tokenizer,
        Path(out),
        recipe_toml=recipe_file.read_text() if recipe_file.is_file() else None,
        eos_token_id=expected_eos(release),
        dtype=dtype,
    )
    for name in ("README.md", "loss.png"):  # the card describes the run, which the copy does not know
        if (release.directory / name).is_file():
            shutil.copy(release.directory / name, Path(out) / name)
    return audit_release(Path(out), load_check=False)


def _json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise CheckpointError(f"{path}: not valid JSON: {exc}") from None
