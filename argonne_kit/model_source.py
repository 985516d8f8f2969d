"""One resolver for "which model?": every command that loads a model goes through it.

``resolve_model_source(spec, checkpoint=None)`` accepts, in this order:

1. a local path (relative paths: each of ``base_dirs`` first, then the current directory):

   - an original training checkpoint ``checkpoint_step_<N>.pt`` (``.pt``/``.pth``/``.bin``). It
     holds weights only: the architecture and tokenizer come from a *companion* model directory
     (``config.json`` + tokenizer) — the one given as ``companion``, else the ``.pt``'s own
     directory when it has a ``config.json``;
   - one of the kit's checkpoints (``RUN_DIR/checkpoints/step_<N>``: a ``checkpoint.json``
     manifest); the model is rebuilt from the resolved recipe it embeds;
   - a run directory: its ``final_model/``, or with ``checkpoint = "latest"`` its newest verified
     checkpoint, or with ``checkpoint = N`` the checkpoint of global step N;
   - an exported (Hugging Face) model directory: ``config.json`` and weights;

2. a Hugging Face Hub repo id ``org/name``, fetched through huggingface_hub's cache (with
   ``HF_HUB_OFFLINE=1`` only the cache is read).

When none fits, one :class:`~argonne_kit.errors.CheckpointError` says which forms were tried and
why each did not fit. The returned :class:`ModelSource` loads the model, the tokenizer and the
resolved recipe of whatever it found::

    source = resolve_model_source("runs/quickstart", checkpoint="latest")
    model = source.load_model()                 # eval mode, fp32, CPU unless asked otherwise
    tokenizer = source.load_tokenizer()
    resolved = source.resolved_recipe()         # None when the source embeds no recipe

Nothing here imports torch or transformers until a model or tokenizer is loaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from argonne_kit.errors import CheckpointError

if TYPE_CHECKING:
    import torch

    from argonne_kit.recipe.api import ResolvedRecipe

#: The forms a source can take (``ModelSource.kind``).
KINDS = ("hub", "export", "run", "checkpoint", "original")
ORIGINAL_SUFFIXES = (".pt", ".pth", ".bin")
RESOLVED_RECIPE_FILE = "resolved_recipe.toml"
#: ``org/name``: what a string that is no local path must look like to be tried on the Hub.
HUB_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


@attrs.frozen
class ModelSource:
    """A located model: where its weights, architecture, tokenizer and recipe are.

    ``kind`` is one of :data:`KINDS`. ``path`` is the Hugging Face directory (``hub``,
    ``export``, ``run`` — the run's ``final_model/``), the checkpoint directory (``checkpoint``)
    or the ``.pt`` file (``original``). ``run_dir`` is the run the model came from, when known
    (its ``metrics.jsonl`` describes the training). ``companion`` is the directory that lends an
    original ``.pt`` its ``config.json`` and tokenizer.
    """

    spec: str
    kind: str
    path: Path
    run_dir: Path | None = None
    companion: Path | None = None
    #: Let a Hugging Face directory's own Python code run (``auto_map``); off, such a model is refused.
    trust_remote_code: bool = False

    def describe(self) -> str:
        """``"checkpoint runs/x/checkpoints/step_00000008"``-style, for messages."""
        return f"{self.kind} {self.path}" + (f" (config from {self.companion})" if self.companion else "")

    @property
    def model_dir(self) -> Path | None:
        """The directory holding ``config.json`` (and tokenizer files): the Hugging Face directory
        itself, or an original checkpoint's companion; None for a kit checkpoint."""
        if self.kind == "original":
            return self.companion
        return None if self.kind == "checkpoint" else self.path

    def config_dict(self) -> dict[str, Any] | None:
        """The model's ``config.json`` as a dict (None for a kit checkpoint: its architecture is
        the ``[model]`` section of :meth:`resolved_recipe`)."""
        directory = self.model_dir
        if directory is None:
            return None
        try:
            return json.loads((directory / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{directory / 'config.json'}: unreadable: {exc}") from None

    def resolved_recipe_path(self) -> Path | None:
        """The ``resolved_recipe.toml`` this source embeds, if any."""
        if self.kind == "original":
            candidates = [self.path.parent / RESOLVED_RECIPE_FILE]
        else:
            candidates = [self.path / RESOLVED_RECIPE_FILE]
        return next((c for c in candidates if c.is_file()), None)

    def resolved_recipe(self) -> ResolvedRecipe | None:
        """The resolved recipe the model was trained with (None when the source has none)."""
        from argonne_kit.recipe.diff import resolve_any

        path = self.resolved_recipe_path()
        return None if path is None else resolve_any(path)

    # -- loading ------------------------------------------------------------------------------
    def load_tokenizer(self):
        """The model's tokenizer: the Hugging Face directory's (or companion's) own, or — for a
        kit checkpoint — the one its resolved recipe names."""
        directory = self.model_dir
        if directory is not None:
            from argonne_kit.safe_io import load_pretrained_tokenizer

            return load_pretrained_tokenizer(directory, trust_remote_code=self.trust_remote_code)
        return self._recipe_tokenizer(self._require_recipe())

    def load_model(self, dtype: torch.dtype | None = None, device: str = "cpu") -> torch.nn.Module:
        """The model in eval mode on ``device`` (``dtype`` default fp32)."""
        import torch

        dtype = dtype or torch.float32
        if self.kind in ("hub", "export", "run"):
            model = _load_hf_directory(self.path, dtype, self.trust_remote_code)
        elif self.kind == "original":
            model = self._load_original()
        else:
            model = self._load_checkpoint()
        return model.to(device=device, dtype=dtype).eval()

    def _require_recipe(self) -> ResolvedRecipe:
        resolved = self.resolved_recipe()
        if resolved is None:
            raise CheckpointError(f"{self.path}: no {RESOLVED_RECIPE_FILE}; cannot rebuild the model")
        return resolved

    def _recipe_tokenizer(self, resolved: ResolvedRecipe):
        """The tokenizer the recipe names (relative to the run directory, then the current one),
        refused when it is not the one the run recorded (its sha256 in ``[meta]``)."""
        from argonne_kit.data.tokenizer import load_tokenizer

        path = resolved.recipe.tokenizer.path
        base = self.run_dir if self.run_dir is not None else self.path
        tokenizer, sha = load_tokenizer(path, base)
        recorded = resolved.meta.get("tokenizer_sha256")
        if recorded and sha != recorded:
            raise CheckpointError(
                f"{self.path}: the tokenizer {path or 'embedded'} found now (sha256 {sha[:12]}…) is not the one "
                f"the run recorded ({recorded[:12]}…)"
            )
        return tokenizer

    def _load_checkpoint(self) -> torch.nn.Module:
        """Rebuild the model from the checkpoint's recipe and load its tensors through the
        single-process strategy (which reads every strategy's checkpoint format)."""
        from argonne_kit.model import build_model
        from argonne_kit.registry import get_registry

        resolved = self._require_recipe()
        tokenizer = self._recipe_tokenizer(resolved)
        model = build_model(resolved.recipe.model, len(tokenizer))
        set_special_ids(model.config, tokenizer)
        single = get_registry().get("parallel", "single")
        strategy = single.factory(single.config_cls())
        strategy.setup(device="cpu")
        try:
            strategy.load(model, None, str(self.path))
        finally:
            strategy.teardown()
        return model

    def _load_original(self) -> torch.nn.Module:
        from transformers import AutoConfig, AutoModelForCausalLM

        from argonne_kit.model import load_original_checkpoint, register_auto_classes
        from argonne_kit.train.init_from import read_original

        if self.companion is None:
            raise CheckpointError(
                f"{self.path}: an original checkpoint holds weights only; name a model "
                f"directory or Hub id with its config.json and tokenizer (--config)"
            )
        register_auto_classes()
        config = AutoConfig.from_pretrained(str(self.companion))
        model = AutoModelForCausalLM.from_config(config)
        load_original_checkpoint(read_original(self.path), model)
        return model


def set_special_ids(config: Any, tokenizer: Any) -> None:
    """eos/pad of a freshly built model from its tokenizer (pad falls back to eos)."""
    if tokenizer.eos_token_id is not None:
        config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _load_hf_directory(directory: Path, dtype: torch.dtype, trust_remote_code: bool) -> torch.nn.Module:
    from argonne_kit.model import register_auto_classes
    from argonne_kit.safe_io import load_pretrained_model

    register_auto_classes()
    return load_pretrained_model(directory, trust_remote_code=trust_remote_code, dtype=dtype)


# -- resolving ----------------------------------------------------------------------------------


def resolve_model_source(
    spec: str | Path,
    checkpoint: str | int | None = None,
    *,
    base_dirs: Sequence[str | Path] = (),
    companion: str | None = None,
    run_prefers: Literal["final", "checkpoint"] = "final",
) -> ModelSource:
    """Locate the model ``spec`` names (see the module doc for the accepted forms).

    ``checkpoint`` (``"latest"`` or a global step) picks a checkpoint of a run directory.
    ``companion`` names the model (directory or Hub id) whose ``config.json`` and tokenizer an
    original ``.pt`` is loaded with. ``run_prefers = "checkpoint"`` makes a bare run directory
    mean its newest verified checkpoint (falling back to ``final_model/``) — what a training
    stage chained from a run wants; ``"final"`` (the default) means its finished export.
    """
    spec = str(spec)
    tried: list[str] = []
    candidates = (
        [Path(spec).expanduser()]
        if Path(spec).expanduser().is_absolute()
        else [Path(b) / spec for b in base_dirs] + [Path(spec)]
    )
    local = next((c for c in candidates if c.exists()), None)
    if local is not None:
        source = _classify_local(spec, local, checkpoint, companion, run_prefers)
        if companion is not None and source.kind != "original":
            raise CheckpointError(
                f"--config {companion}: only an original .pt takes a config; {spec} is a {source.kind}"
            )
        return source
    where = ", ".join(str(c.parent.resolve()) for c in candidates)
    tried.append(f"local path (not in {where})")
    if checkpoint is not None or companion is not None:
        flag = "--checkpoint" if checkpoint is not None else "--config"
        raise CheckpointError(f"{spec!r} not found: {flag} needs a local path; tried {'; '.join(tried)}")
    if HUB_REPO_ID.match(spec):
        directory, why = _hub_snapshot(spec)
        if directory is not None:
            return ModelSource(spec, "hub", directory)
        tried.append(f"Hugging Face Hub repo id ({why})")
    else:
        tried.append("Hugging Face Hub repo id (not of the form org/name)")
    raise CheckpointError(f"{spec!r} not found: tried {'; '.join(tried)}")


def _classify_local(
    spec: str, path: Path, checkpoint: str | int | None, companion: str | None, run_prefers: str
) -> ModelSource:
    from argonne_kit.train.checkpoint import CHECKPOINTS_DIR, is_checkpoint
    from argonne_kit.train.export import FINAL_MODEL_DIR

    if checkpoint is not None and not (path / CHECKPOINTS_DIR).is_dir():
        raise CheckpointError(f"{spec}: --checkpoint {checkpoint} needs a run directory (with {CHECKPOINTS_DIR}/)")
    if path.is_file():
        if path.suffix in ORIGINAL_SUFFIXES:
            return ModelSource(spec, "original", path, companion=_companion(path, companion))
        raise CheckpointError(
            f"{spec}: a file, but not an original training checkpoint "
            f"({', '.join(ORIGINAL_SUFFIXES)}); tried: original checkpoint"
        )
    if is_checkpoint(path):
        return ModelSource(spec, "checkpoint", path, run_dir=_run_of_checkpoint(path))
    final = path / FINAL_MODEL_DIR
    has_final = (final / "config.json").is_file()
    if (path / CHECKPOINTS_DIR).is_dir() or has_final:
        if checkpoint is None and run_prefers == "checkpoint":
            newest = _newest_verified(path, has_final)
            if newest is not None:
                return ModelSource(spec, "checkpoint", newest, run_dir=path)
        if checkpoint is None and has_final:
            return ModelSource(spec, "run", final, run_dir=path)
        if checkpoint is None:
            steps = _steps(path)
            hint = f" (newest: step {steps[-1]})" if steps else " (and it holds no checkpoint yet)"
            raise CheckpointError(
                f"{spec}: a run directory without {FINAL_MODEL_DIR}/ (its budget has not "
                f"completed); pass --checkpoint latest or --checkpoint N{hint}"
            )
        return ModelSource(spec, "checkpoint", _pick_checkpoint(spec, path, checkpoint), run_dir=path)
    if (path / "config.json").is_file():
        return ModelSource(spec, "export", path, run_dir=_run_of_export(path))
    raise CheckpointError(
        f"{spec}: not a model directory, run or checkpoint; tried: original checkpoint (not a .pt file), kit checkpoint (no checkpoint.json), "
        f"run directory (no {CHECKPOINTS_DIR}/ nor {FINAL_MODEL_DIR}/), exported model (no config.json)"
    )


def _companion(pt: Path, companion: str | None) -> Path | None:
    if companion is not None:
        source = resolve_model_source(companion)
        if source.model_dir is None:
            raise CheckpointError(
                f"--config {companion}: a kit checkpoint has no config.json; name an exported model directory or Hub id"
            )
        return source.model_dir
    return pt.parent if (pt.parent / "config.json").is_file() else None


def _steps(run_dir: Path) -> list[int]:
    from argonne_kit.train.checkpoint import CHECKPOINTS_DIR, list_checkpoints

    return [step for step, _p in list_checkpoints(run_dir / CHECKPOINTS_DIR)]


def _newest_verified(run_dir: Path, has_final: bool) -> Path | None:
    """The run's newest checkpoint that verifies (each skipped one is logged with its reason);
    None when it has none, or when none verifies but the run exported its final model."""
    import logging

    from argonne_kit.train.checkpoint import CHECKPOINTS_DIR, newest_verified

    try:
        return newest_verified(run_dir / CHECKPOINTS_DIR, log=logging.getLogger("argonne_kit").warning)
    except CheckpointError:
        if not has_final:
            raise
        return None


def _pick_checkpoint(spec: str, run_dir: Path, checkpoint: str | int) -> Path:
    from argonne_kit.train.checkpoint import CHECKPOINTS_DIR, list_checkpoints, verify_checkpoint

    found = dict(list_checkpoints(run_dir / CHECKPOINTS_DIR))
    if str(checkpoint) == "latest":
        newest = _newest_verified(run_dir, has_final=False)
        if newest is None:
            raise CheckpointError(f"{spec}: --checkpoint latest: no verified checkpoint in {run_dir / CHECKPOINTS_DIR}")
        return newest
    try:
        step = int(checkpoint)
    except ValueError:
        raise CheckpointError(f"--checkpoint {checkpoint!r}: expected 'latest' or a global step number") from None
    if step not in found:
        raise CheckpointError(
            f"{spec}: no checkpoint of step {step}; the run has steps {', '.join(map(str, sorted(found))) or 'none'}"
        )
    verify_checkpoint(found[step])
    return found[step]


def _run_of_checkpoint(path: Path) -> Path | None:
    from argonne_kit.train.checkpoint import CHECKPOINTS_DIR

    return path.parent.parent if path.parent.name == CHECKPOINTS_DIR else None


def _run_of_export(path: Path) -> Path | None:
    from argonne_kit.train.export import FINAL_MODEL_DIR

    return path.parent if path.name == FINAL_MODEL_DIR else None


def _hub_snapshot(repo_id: str) -> tuple[Path | None, str]:
    """``(local snapshot directory, "")`` or ``(None, why not)``."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        return Path(snapshot_download(repo_id)), ""
    except LocalEntryNotFoundError:
        return None, "not in the local Hugging Face cache, and the Hub cannot be reached or HF_HUB_OFFLINE=1"
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return None, "no such repository on the Hub"
    except Exception as exc:  # network failures come in many types; the message names this one
        return None, f"download failed: {type(exc).__name__}: {exc}"
