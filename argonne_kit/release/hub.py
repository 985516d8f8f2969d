"""Uploading a release to the Hugging Face Hub with huggingface_hub.

The repository is created (or reused), then the folder goes up in one commit — or, when it is
larger than :data:`COMMIT_BYTES`, in several commits of at most that size each, so an interrupted
upload of a large model keeps the commits already made. The token comes from huggingface_hub's
usual places (``HF_TOKEN``, ``hf auth login``); ``HF_ENDPOINT`` selects another Hub.
"""

from __future__ import annotations

from pathlib import Path

#: Bytes of files per commit: a larger folder is uploaded in several commits.
COMMIT_BYTES = 20 * 1024**3


def release_files(directory: Path) -> list[tuple[str, int]]:
    """``(path in the repo, size in bytes)`` of every file to upload, in name order; hidden files
    and folders (``.cache``, temporary files) are left out."""
    directory = Path(directory)
    files = []
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            files.append((rel.as_posix(), path.stat().st_size))
    return files


def commit_batches(files: list[tuple[str, int]], limit: int = COMMIT_BYTES) -> list[list[tuple[str, int]]]:
    """``files`` cut, in order, into batches of at most ``limit`` bytes (a larger file goes alone)."""
    batches: list[list[tuple[str, int]]] = [[]]
    size = 0
    for name, bytes_ in files:
        if batches[-1] and size + bytes_ > limit:
            batches.append([])
            size = 0
        batches[-1].append((name, bytes_))
        size += bytes_
    return [b for b in batches if b]


def push_release(
    directory: Path,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    limit: int | None = None,
) -> list[str]:
    """Create ``repo_id`` (kept when it exists), the branch ``revision`` when given, and upload
    every file of ``directory``; returns the URLs of the commits made."""
    from huggingface_hub import CommitOperationAdd, HfApi

    directory = Path(directory)
    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision is not None:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    batches = commit_batches(release_files(directory), COMMIT_BYTES if limit is None else limit)
    message = commit_message or f"Upload {directory.name} with argonne-kit"
    urls = []
    for i, batch in enumerate(batches, 1):
        operations = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(directory / name)) for name, _size in batch
        ]
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=message if len(batches) == 1 else f"{message} ({i}/{len(batches)})",
            revision=revision,
        )
        urls.append(info.commit_url)
    return urls
