"""What a run records about where it came from ([meta] of its resolved recipe, D-1)."""

from __future__ import annotations

import importlib.metadata as metadata
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import argonne_kit


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_revision(path: Path) -> str | None:
    """``<sha>`` (``+dirty`` when the tree has changes) of the project checkout, if it is one."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        if not sha:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def run_meta(registry, *, tokenizer_name: str, tokenizer_sha256: str, world_size: int) -> dict[str, Any]:
    """Versions of argonne-kit and its key libraries, every loaded plugin with its distribution,
    the project's git revision and the tokenizer's hash."""
    plugins = {info.name: f"{info.distribution.name} {info.distribution.version}" for info in registry.plugins()}
    meta: dict[str, Any] = {
        "argonne_kit": argonne_kit.__version__,
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "tokenizers": _version("tokenizers"),
        "python": platform.python_version(),
        "plugins": plugins,
        "tokenizer": tokenizer_name,
        "tokenizer_sha256": tokenizer_sha256,
        "world_size": world_size,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    revision = git_revision(Path(argonne_kit.__file__).resolve().parent.parent)
    if revision:
        meta["git_revision"] = revision
    return meta
