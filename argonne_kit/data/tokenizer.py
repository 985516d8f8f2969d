"""Loading tokenizers — local directory, ``tokenizer.json`` file, Hub id, or the embedded default —
and identifying them by hash.

The hash is the sha256 of the tokenizer's ``tokenizer.json`` bytes, the same digest the Hub's
pinned-hash files list (e.g. Qwen3's ``aeb13307…``), so a manifest or checkpoint can be checked
against the tokenizer a later stage loads. Chat sources additionally fingerprint the chat template.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from argonne_kit.errors import DataError

#: What ``tokenizer.path = None`` means in a recipe.
EMBEDDED_NAME = "embedded:quickstart"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_TOKENIZER_FILES = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
]


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tokenizer_hash(tokenizer: Any, directory: str | Path | None = None) -> str:
    """sha256 of ``tokenizer.json`` in ``directory`` when it exists, else of the serialized
    backend tokenizer (for tokenizers built in memory)."""
    if directory is not None:
        candidate = Path(directory)
        candidate = candidate if candidate.is_file() else candidate / "tokenizer.json"
        if candidate.is_file():
            return sha256_file(candidate)
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    return hashlib.sha256(backend.to_str().encode("utf-8")).hexdigest()


def resolve_tokenizer_location(path: str | None, base_dir: str | Path = ".") -> tuple[str, Path | None]:
    """``(name, local path or None for a Hub id)``. A relative path is looked up against
    ``base_dir`` first, then the current directory; a string that exists nowhere and looks like
    ``org/name`` is a Hub id."""
    if path is None:
        return EMBEDDED_NAME, None
    candidate = Path(path).expanduser()
    for root in [candidate] if candidate.is_absolute() else [Path(base_dir) / candidate, candidate]:
        if root.exists():
            return path, root.resolve()
    if _HUB_ID.match(path) and not path.startswith("."):
        return path, None
    raise DataError(
        f"tokenizer {path!r}: no such file or directory (looked in {Path(base_dir).resolve()} "
        f"and {Path.cwd()}), and it is not a Hugging Face Hub id"
    )


def load_tokenizer(path: str | None, base_dir: str | Path = ".", cache_dir: str | Path | None = None):
    """Load a ``transformers`` tokenizer and return ``(tokenizer, sha256)``.

    ``path`` is a local tokenizer directory, a ``tokenizer.json`` file, a Hub id (downloaded once
    into the Hugging Face cache; offline use needs it cached) or None for the embedded
    quickstart tokenizer (generated on first use into ``cache_dir``).
    """
    name, local = resolve_tokenizer_location(path, base_dir)
    if path is None:
        from argonne_kit.data.embedded import ensure_quickstart_assets

        local = ensure_quickstart_assets(cache_dir).tokenizer_dir
    elif local is None:
        local = _download_from_hub(name)
    tokenizer = _load_local(local)
    tokenizer.name_or_path = name
    return tokenizer, tokenizer_hash(tokenizer, local)


def _load_local(location: Path):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        if location.is_file():
            return PreTrainedTokenizerFast(tokenizer_file=str(location))
        return AutoTokenizer.from_pretrained(str(location), trust_remote_code=False)
    except Exception as exc:
        raise DataError(f"tokenizer {location}: cannot load: {exc}") from None


def _download_from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError
    except ImportError as exc:  # pragma: no cover - huggingface_hub is a dependency
        raise DataError(f"tokenizer {repo_id!r}: huggingface_hub is not installed ({exc})") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=_TOKENIZER_FILES))
    except LocalEntryNotFoundError:
        raise DataError(
            f"tokenizer {repo_id!r}: not in the local Hugging Face cache and the Hub cannot be reached "
            f"(offline, or HF_HUB_OFFLINE=1). Download it once where there is network "
            f"(`hf download {repo_id}`), or set tokenizer.path / --tokenizer to a local directory"
        ) from None
    except RepositoryNotFoundError:
        raise DataError(
            f"tokenizer {repo_id!r}: no such repository on the Hugging Face Hub (and no such local path)"
        ) from None
    except Exception as exc:
        raise DataError(
            f"tokenizer {repo_id!r}: cannot download from the Hugging Face Hub: {exc}. "
            f"Offline? Point tokenizer.path at a local directory instead"
        ) from None


def special_token_id(tokenizer: Any, token: str | None) -> int | None:
    """The id of a special token string, or None when absent."""
    if token is None:
        return None
    ids = tokenizer.convert_tokens_to_ids([token])
    value = ids[0] if ids else None
    return None if value is None or (value == tokenizer.unk_token_id and token != tokenizer.unk_token) else int(value)
