"""The embedded quickstart assets and tokenizer loading (offline)."""

from __future__ import annotations

import hashlib
import time

import pyarrow.parquet as pq
import pytest

from argonne_kit.data.embedded import FINEWEB_COLUMNS, ensure_quickstart_assets
from argonne_kit.data.tokenizer import load_tokenizer
from argonne_kit.errors import DataError


def _hashes(root):
    """sha256 of every generated file (shards/ is added later by ensure_quickstart_shards)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "shards" not in p.relative_to(root).parts
    }


@pytest.mark.slow
def test_generation_is_deterministic_idempotent_and_fast(tmp_path, qs_cache):
    start = time.perf_counter()
    fresh = ensure_quickstart_assets(tmp_path)
    assert time.perf_counter() - start < 20
    reference = ensure_quickstart_assets(qs_cache)
    assert _hashes(fresh.root) == _hashes(reference.root)
    before = fresh.tokenizer_dir.joinpath("tokenizer.json").stat().st_mtime_ns
    assert ensure_quickstart_assets(tmp_path) == fresh  # idempotent: nothing regenerated
    assert fresh.tokenizer_dir.joinpath("tokenizer.json").stat().st_mtime_ns == before


def test_corpus_has_the_fineweb_schema(qs_cache):
    assets = ensure_quickstart_assets(qs_cache)
    files = sorted(assets.train_parquet_dir.glob("*.parquet"))
    assert len(files) == 2
    table = pq.read_table(files[0])
    assert tuple(table.column_names) == FINEWEB_COLUMNS
    texts = table.column("text").to_pylist()
    assert sum(len(t) for t in texts) > 1_000_000
    assert any(t.startswith("Long long time ago") for t in texts)


def test_embedded_tokenizer(tokenizer, qs_cache):
    assert tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [0, 1, 2]
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.pad_token_id == 0 and tokenizer.bos_token is None
    assert len(tokenizer) <= 1024  # the corpus saturates the merges well below the 2,048 target
    text = "Long long time ago, there was a little cat named Mia."
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer("<think>x</think>", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens([ids[0], ids[-1]]) == ["<think>", "</think>"]
    _, sha = load_tokenizer(None, cache_dir=qs_cache)
    assert (
        sha
        == hashlib.sha256(
            ensure_quickstart_assets(qs_cache).tokenizer_dir.joinpath("tokenizer.json").read_bytes()
        ).hexdigest()
    )


def test_tokenizer_paths_and_offline_hub_error(tmp_path, qs_cache, monkeypatch):
    tok_dir = ensure_quickstart_assets(qs_cache).tokenizer_dir
    by_dir, sha_dir = load_tokenizer("tokenizer", base_dir=tok_dir.parent)  # relative to the recipe directory
    by_file, sha_file = load_tokenizer(str(tok_dir / "tokenizer.json"))
    assert sha_dir == sha_file and by_dir("a cat")["input_ids"] == by_file("a cat")["input_ids"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(DataError, match=r"'nobody/no-such-tokenizer': not in the local Hugging Face cache.*offline"):
        load_tokenizer("nobody/no-such-tokenizer", base_dir=tmp_path)
    with pytest.raises(DataError, match="no such file or directory"):
        load_tokenizer("./missing/dir", base_dir=tmp_path)
