"""Perplexity equals the trainer's validation loss; files are cut the way training cuts them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from eval_fixtures import val_loss

from argonne_kit.cli import main
from argonne_kit.evaluate.windows import batched, windows


def test_eval_on_the_run_equals_trainer_val_loss(tiny_run, tmp_path, capsys):
    out = tmp_path / "results.json"
    assert main(["eval", str(tiny_run), "--ppl", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["data"] == "val_data" and results["tokens"] == 2 * 8 * 128
    # the same windows, weights and loss: equal up to summation order (far inside 1e-4)
    assert results["nll"] == pytest.approx(val_loss(tiny_run), abs=1e-6)
    assert results["perplexity"] == pytest.approx(math.exp(val_loss(tiny_run)), rel=1e-6)
    assert "perplexity (val_data)" in capsys.readouterr().out


def test_packed_windows_share_one_token_and_keep_the_tail():
    docs = [np.arange(0, 5), np.arange(5, 12)]
    rows = list(windows(iter(docs), 4))
    assert [r.tolist() for r in rows] == [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8], [8, 9, 10, 11]]
    batches = list(batched(iter(rows), 8))
    assert [b.shape for b in batches] == [torch.Size([2, 5]), torch.Size([1, 4])]
    assert [r.tolist() for r in windows(iter(docs), 5, "document")] == [[5, 6, 7, 8, 9, 10]]


def test_jsonl_and_shards_score_the_same_tokens(tiny_run, tmp_path):
    """The validation text as JSONL or parquet (tokenized with the model's tokenizer, EOS after
    each document) scores exactly like the preprocessed validation shards."""
    import pyarrow.parquet as pq

    from argonne_kit.data.embedded import ensure_quickstart_assets, ensure_quickstart_shards
    from argonne_kit.data.preprocess import list_parquet_files

    assets = ensure_quickstart_assets()
    texts = [t for f in list_parquet_files(assets.validation_parquet_dir) for t in pq.read_table(f)["text"].to_pylist()]
    jsonl = tmp_path / "val.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:40]))
    shards = ensure_quickstart_shards("validation")
    parquet = tmp_path / "val.parquet"
    pq.write_table(pq.read_table(list_parquet_files(assets.validation_parquet_dir)[0]).slice(0, 40), parquet)
    results = {}
    for name, data in (("jsonl", jsonl), ("shards", shards), ("parquet", parquet)):
        out = tmp_path / f"{name}.json"
        assert main(["eval", str(tiny_run), "--data", str(data), "--max-batches", "2", "--out", str(out)]) == 0
        results[name] = json.loads(out.read_text())
    assert results["jsonl"]["tokens"] == results["shards"]["tokens"] == 2 * 8 * 128
    assert results["jsonl"]["nll"] == pytest.approx(results["shards"]["nll"], abs=1e-9)
    assert results["parquet"]["nll"] == pytest.approx(results["shards"]["nll"], abs=1e-9)


def test_bad_input_is_one_line_exit_2(tiny_run, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": 1}\n')
    assert main(["eval", str(tiny_run), "--data", str(bad)]) == 2
    err = capsys.readouterr().err  # above it: progress bars only
    assert err.strip().splitlines()[-1] == f"argonne-kit: error: {bad}:2: expected an object with a string 'text' field"
    assert "Traceback" not in err
