"""Parquet text → token shards + manifest (``argonne-kit preprocess``).

Each input parquet file is one unit of work and produces its own shards
(``<file>-0000.bin``, ``-0001.bin`` … of about ``shard_tokens`` tokens each, whole documents only)
and a completion record ``parts/<file>.json``. So the output does not depend on the worker count,
a re-run skips every input whose record matches (resumable), and since shards, lengths files and
records are written through temporary names and atomic renames, an interrupted run leaves nothing
that looks complete. The manifest is assembled from the records in input order at the end.

Each document is followed by EOS and gets no BOS (the original's convention; both configurable).
Empty and None rows are counted per file and reported, never silently dropped.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from argonne_kit.data.manifest import MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION
from argonne_kit.data.shards import ShardWriter, atomic_save_npy
from argonne_kit.data.tokenizer import load_tokenizer
from argonne_kit.errors import DataError, suggest
from argonne_kit.safe_io import TMP_SUFFIX, atomic_write_bytes

DEFAULT_SHARD_TOKENS = 100_000_000
DEFAULT_BATCH_ROWS = 1000
PARTS_DIR = "parts"


@attrs.frozen
class PreprocessSettings:
    """Everything that shapes the output; a re-run with different settings is refused."""

    tokenizer_name: str
    tokenizer_sha256: str
    text_column: str = "text"
    append_eos: bool = True
    prepend_bos: bool = False
    eos_id: int | None = None
    bos_id: int | None = None
    shard_tokens: int = DEFAULT_SHARD_TOKENS

    def key(self) -> dict[str, Any]:
        return {
            "tokenizer_sha256": self.tokenizer_sha256,
            "text_column": self.text_column,
            "append_eos": self.append_eos,
            "prepend_bos": self.prepend_bos,
            "eos_id": self.eos_id,
            "bos_id": self.bos_id,
            "shard_tokens": self.shard_tokens,
        }


@attrs.frozen
class FileJob:
    """One input parquet file to tokenize."""

    path: Path
    relpath: str
    output_dir: Path
    settings: PreprocessSettings
    tokenizer_json: str
    batch_rows: int = DEFAULT_BATCH_ROWS

    @property
    def stem(self) -> str:
        return self.relpath.removesuffix(".parquet").replace("/", "__")

    @property
    def record_path(self) -> Path:
        return self.output_dir / PARTS_DIR / f"{self.stem}.json"


def list_parquet_files(input_dir: str | Path) -> list[Path]:
    """All ``*.parquet`` under ``input_dir`` (or the file itself), sorted by relative path."""
    root = Path(input_dir)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DataError(f"{root}: no such input directory")
    files = sorted(root.rglob("*.parquet"), key=lambda p: p.relative_to(root).as_posix())
    if not files:
        raise DataError(f"{root}: no *.parquet files found")
    return files


def preprocess(
    input_dir: str | Path,
    tokenizer: str | None,
    output_dir: str | Path,
    *,
    text_column: str = "text",
    workers: int = 1,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    append_eos: bool = True,
    prepend_bos: bool = False,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Tokenize every parquet file under ``input_dir`` into shards under ``output_dir``; return the manifest."""
    inputs = list_parquet_files(input_dir)
    root = Path(input_dir) if Path(input_dir).is_dir() else Path(input_dir).parent
    hf_tokenizer, sha = load_tokenizer(tokenizer)
    settings = PreprocessSettings(
        tokenizer_name=str(tokenizer) if tokenizer else "embedded:quickstart",
        tokenizer_sha256=sha,
        text_column=text_column,
        append_eos=append_eos,
        prepend_bos=prepend_bos,
        eos_id=_required_id(hf_tokenizer, "eos", append_eos),
        bos_id=_required_id(hf_tokenizer, "bos", prepend_bos),
        shard_tokens=shard_tokens,
    )
    out = Path(output_dir)
    (out / PARTS_DIR).mkdir(parents=True, exist_ok=True)
    _check_compatible(out, settings)
    _remove_stale_temporaries(out)
    if not (out / "tokenizer").exists():
        hf_tokenizer.save_pretrained(str(out / "tokenizer"))

    tokenizer_json = hf_tokenizer.backend_tokenizer.to_str()
    jobs = [FileJob(p, p.relative_to(root).as_posix(), out, settings, tokenizer_json, batch_rows) for p in inputs]
    records: dict[str, dict[str, Any]] = {}
    todo = []
    for job in jobs:
        record = _completed_record(job)
        if record is None:
            todo.append(job)
        else:
            records[job.relpath] = record
    if records:
        log(f"preprocess: {len(records)} of {len(jobs)} input files already done; skipping them")

    from tqdm.auto import tqdm

    total_rows = sum(_row_count(job.path) for job in todo)
    with tqdm(total=total_rows, unit="rows", desc="preprocess", disable=not progress or not todo) as bar:
        if workers <= 1 or len(todo) <= 1:
            for job in todo:
                records[job.relpath] = run_job(job, bar.update)
        else:
            # fork: the workers inherit the imports (spawning re-imports torch/transformers, ~10 s
            # each); one process per file already uses every core, so the forked workers run the
            # tokenizer single-threaded (set explicitly, which also silences tokenizers' fork warning).
            previous = os.environ.get("TOKENIZERS_PARALLELISM")
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
            try:
                pool = multiprocessing.get_context("fork").Pool(min(workers, len(todo)))
            finally:
                if previous is None:
                    os.environ.pop("TOKENIZERS_PARALLELISM")
                else:
                    os.environ["TOKENIZERS_PARALLELISM"] = previous
            with pool:
                for record in pool.imap_unordered(run_job, todo):
                    records[record["file"]] = record
                    bar.update(record["rows"])

    manifest = _assemble_manifest(settings, hf_tokenizer, [records[job.relpath] for job in jobs])
    if manifest["totals"]["docs"] == 0:  # nothing to train on: an error, not a manifest of zero shards
        raise DataError(
            f"{input_dir}: no documents: {len(jobs)} parquet file(s) with "
            f"{manifest['totals']['rows']:,} rows, none with text in column {text_column!r}"
        )
    atomic_write_bytes(out / MANIFEST_NAME, (json.dumps(manifest, indent=1) + "\n").encode())
    totals = manifest["totals"]
    log(
        f"preprocess: {totals['docs']:,} documents, {totals['tokens']:,} tokens in {totals['shards']} shards "
        f"→ {out}; {totals['empty_rows']:,} empty/None rows skipped and counted"
        + "".join(f"\n  {s['file']}: {s['empty_rows']:,} empty rows" for s in manifest["sources"] if s["empty_rows"])
    )
    return manifest


def _required_id(tokenizer: Any, which: str, needed: bool) -> int | None:
    value = getattr(tokenizer, f"{which}_token_id")
    if needed and value is None:
        raise DataError(
            f"tokenizer {tokenizer.name_or_path}: has no {which.upper()} token but "
            f"{'--append-eos' if which == 'eos' else '--bos'} asks for one"
        )
    return value if needed else None


def _check_compatible(out: Path, settings: PreprocessSettings) -> None:
    for record_path in sorted((out / PARTS_DIR).glob("*.json")):
        try:
            previous = json.loads(record_path.read_text(encoding="utf-8")).get("settings")
        except (OSError, ValueError):
            continue  # an unreadable record is redone, not trusted
        if previous != settings.key():
            changed = sorted(k for k in settings.key() if (previous or {}).get(k) != settings.key()[k])
            raise DataError(
                f"{out}: already holds shards made with different settings ({', '.join(changed)}); "
                f"use a new --output directory"
            )
        return


def _remove_stale_temporaries(out: Path) -> None:
    for path in list(out.glob(f"*{TMP_SUFFIX}")) + list((out / PARTS_DIR).glob(f"*{TMP_SUFFIX}")):
        path.unlink(missing_ok=True)


def _input_identity(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _completed_record(job: FileJob) -> dict[str, Any] | None:
    try:
        record = json.loads(job.record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("settings") != job.settings.key() or record.get("input") != _input_identity(job.path):
        return None
    if not all((job.output_dir / s["path"]).is_file() for s in record["shards"]):
        return None
    return record


def _row_count(path: Path) -> int:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception as exc:
        raise DataError(f"{path}: not a readable parquet file: {exc}") from None


def open_parquet_column(path: Path, column: str, hint: str):
    """``pyarrow.parquet.ParquetFile`` of ``path``; DataError naming the file when it is not
    parquet or has no ``column`` (with a close-match suggestion and ``hint``)."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
    except Exception as exc:
        raise DataError(f"{path}: not a readable parquet file: {exc}") from None
    if column not in names:
        raise DataError(f"{path}: no column {column!r}{suggest(column, names)}; columns: {', '.join(names)} ({hint})")
    return parquet


def text_rows(values: list[Any], order, path: Path, first_row: int, column: str) -> tuple[list[str], int]:
    """The non-empty texts of ``values`` taken in ``order`` and the number of empty/None rows
    (counted, never silently dropped); DataError naming file and row for a non-text value."""
    texts, empty = [], 0
    for i in order:
        value = values[int(i)]
        if value is None or value == "":
            empty += 1
        elif not isinstance(value, str):
            raise DataError(
                f"{path}: row {first_row + int(i)}: column {column!r} holds {type(value).__name__}, not text"
            )
        else:
            texts.append(value)
    return texts, empty


def iter_text_batches(path: Path, column: str, batch_rows: int) -> Iterator[tuple[int, list[Any]]]:
    """``(first row index, values)`` batches of one column; DataError naming the file when the
    file is not parquet or lacks the column."""
    parquet = open_parquet_column(path, column, "choose one with --text-column")
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=[column]):
            values = batch.column(0).to_pylist()
            yield row, values
            row += len(values)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: corrupt parquet data after row {row}: {exc}") from None


def run_job(job: FileJob, on_rows: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Tokenize one file into its shards and write its completion record; return the record."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(job.tokenizer_json)
    settings = job.settings
    prefix = _document_ids(settings.prepend_bos, settings.bos_id, "a BOS token")
    suffix = _document_ids(settings.append_eos, settings.eos_id, "an EOS token")
    shards: list[dict[str, Any]] = []
    rows = docs = empty = 0
    writer: ShardWriter | None = None
    lengths: list[int] = []

    def finish_shard() -> None:
        nonlocal writer, lengths
        assert writer is not None, "finish_shard is only called with a shard open"
        name = f"{job.stem}-{len(shards):04d}"
        atomic_save_npy(job.output_dir / f"{name}.lengths.npy", np.asarray(lengths, dtype=np.uint32))
        writer.close()
        shards.append(
            {
                "path": f"{name}.bin",
                "lengths": f"{name}.lengths.npy",
                "docs": len(lengths),
                "tokens": writer.num_tokens,
                "source": job.relpath,
            }
        )
        writer, lengths = None, []

    try:
        for first_row, values in iter_text_batches(job.path, settings.text_column, job.batch_rows):
            texts, skipped = text_rows(values, range(len(values)), job.path, first_row, settings.text_column)
            empty += skipped
            rows += len(values)
            if texts:
                flat, doc_lengths = flatten_encodings(
                    tokenizer.encode_batch_fast(texts, add_special_tokens=False), prefix, suffix
                )
                start = 0
                while start < len(doc_lengths):
                    if writer is None:
                        writer = ShardWriter(job.output_dir / f"{job.stem}-{len(shards):04d}.bin")
                    # take documents until the shard reaches shard_tokens (whole documents only)
                    ends = np.cumsum(doc_lengths[start:])
                    room = settings.shard_tokens - writer.num_tokens
                    take = min(int(np.searchsorted(ends, room)) + 1, len(ends))
                    token_start = int(doc_lengths[:start].sum())
                    writer.write(flat[token_start : token_start + int(ends[take - 1])])
                    lengths.extend(doc_lengths[start : start + take].tolist())
                    start += take
                    if writer.num_tokens >= settings.shard_tokens:
                        finish_shard()
                docs += len(texts)
            if on_rows is not None:
                on_rows(len(values))
        if writer is not None:
            finish_shard()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    record = {
        "file": job.relpath,
        "input": _input_identity(job.path),
        "settings": settings.key(),
        "rows": rows,
        "docs": docs,
        "empty_rows": empty,
        "tokens": sum(s["tokens"] for s in shards),
        "shards": shards,
    }
    atomic_write_bytes(job.record_path, (json.dumps(record, indent=1) + "\n").encode())
    return record


def _document_ids(enabled: bool, token_id: int | None, what: str) -> list[int]:
    """``[token_id]`` when ``enabled`` (the BOS before or the EOS after each document), else ``[]``."""
    if not enabled:
        return []
    if token_id is None:  # preprocess() resolves every id it is asked for (_required_id)
        raise DataError(f"preprocess settings ask for {what} but give no token id")
    return [token_id]


def flatten_encodings(encodings: list[Any], prefix: list[int], suffix: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """One uint32 array of ``prefix + ids + suffix`` per document, and the per-document lengths."""
    extra = len(prefix) + len(suffix)
    doc_lengths = np.fromiter((len(e.ids) + extra for e in encodings), dtype=np.int64, count=len(encodings))
    flat = np.empty(int(doc_lengths.sum()), dtype=np.uint32)
    pos = 0
    for encoding, length in zip(encodings, doc_lengths.tolist()):
        body = pos + len(prefix)
        flat[body : body + length - extra] = encoding.ids
        if prefix:
            flat[pos : pos + len(prefix)] = prefix
        if suffix:
            flat[pos + length - len(suffix) : pos + length] = suffix
        pos += length
    return flat, doc_lengths


def _assemble_manifest(settings: PreprocessSettings, tokenizer: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    shards = [shard for record in records for shard in record["shards"]]
    sources = [
        {
            "file": r["file"],
            "size": r["input"]["size"],
            "rows": r["rows"],
            "docs": r["docs"],
            "empty_rows": r["empty_rows"],
            "tokens": r["tokens"],
            "shards": [s["path"] for s in r["shards"]],
        }
        for r in records
    ]
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "tokenizer": {
            "name": settings.tokenizer_name,
            "sha256": settings.tokenizer_sha256,
            "vocab_size": len(tokenizer),
            "eos_id": tokenizer.eos_token_id,
            "bos_id": tokenizer.bos_token_id,
        },
        "text_column": settings.text_column,
        "append_eos": settings.append_eos,
        "prepend_bos": settings.prepend_bos,
        "dtype": "uint32",
        "shard_tokens": settings.shard_tokens,
        "sources": sources,
        "shards": shards,
        "totals": {key: sum(s[key] for s in sources) for key in ("rows", "docs", "empty_rows", "tokens")}
        | {"shards": len(shards)},
    }
