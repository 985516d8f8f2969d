"""``argonne-kit preprocess``: parquet → shards + manifest; worker-count independence, resume,
empty-row accounting and bad input."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from argonne_kit.cli import main
from argonne_kit.data.manifest import find_shards
from argonne_kit.data.preprocess import preprocess
from argonne_kit.errors import DataError


def _corpus(root, files=3, rows=30):
    root.mkdir()
    texts = []
    for f in range(files):
        column = [f"Document {f}-{i}: the {['red', 'blue'][i % 2]} ball rolled {i} times." for i in range(rows)]
        column[3] = ""  # empty rows are counted, not written
        column[7] = None
        texts.append(column)
        pq.write_table(
            pa.table({"text": column, "id": [str(i) for i in range(rows)]}),
            root / f"part-{f:02d}.parquet",
            row_group_size=8,
        )
    return texts


def _quiet(*_args):
    pass


@pytest.fixture
def tok_dir(qs_cache):
    from argonne_kit.data.embedded import ensure_quickstart_assets

    return str(ensure_quickstart_assets(qs_cache).tokenizer_dir)


def test_shards_hold_each_document_followed_by_eos(tmp_path, tok_dir, tokenizer):
    texts = _corpus(tmp_path / "in")
    manifest = preprocess(tmp_path / "in", tok_dir, tmp_path / "out", shard_tokens=200, progress=False, log=_quiet)
    expected = []
    for column in texts:
        for text in column:
            if text:
                expected += tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    shard_set = find_shards(tmp_path / "out")
    stream = np.concatenate([s.memmap() for s in shard_set.shards]).tolist()
    assert stream == expected
    assert manifest["totals"] == {
        "rows": 90,
        "docs": 84,
        "empty_rows": 6,
        "tokens": len(expected),
        "shards": len(shard_set.shards),
    }
    assert len(shard_set.shards) > 3  # shard_tokens split each file into several shards
    assert manifest["tokenizer"]["eos_id"] == tokenizer.eos_token_id
    assert len(manifest["tokenizer"]["sha256"]) == 64
    assert [s["empty_rows"] for s in manifest["sources"]] == [2, 2, 2]
    for i, shard in enumerate(shard_set.shards):  # whole documents per shard, lengths recorded
        lengths = shard_set.doc_lengths(i)
        assert int(lengths.sum()) == shard.num_tokens
        assert shard.memmap()[np.cumsum(lengths) - 1].tolist() == [tokenizer.eos_token_id] * len(lengths)


def test_output_is_identical_for_any_worker_count(tmp_path, tok_dir):
    _corpus(tmp_path / "in")
    preprocess(tmp_path / "in", tok_dir, tmp_path / "w1", workers=1, shard_tokens=300, progress=False, log=_quiet)
    preprocess(tmp_path / "in", tok_dir, tmp_path / "w2", workers=2, shard_tokens=300, progress=False, log=_quiet)
    names = sorted(p.name for p in (tmp_path / "w1").glob("*.bin"))
    assert names == sorted(p.name for p in (tmp_path / "w2").glob("*.bin"))
    for name in names:
        assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes()
    assert (tmp_path / "w1" / "manifest.json").read_text() == (tmp_path / "w2" / "manifest.json").read_text()


def test_rerun_skips_done_files_and_redoes_interrupted_ones(tmp_path, tok_dir):
    _corpus(tmp_path / "in")
    out = tmp_path / "out"
    preprocess(tmp_path / "in", tok_dir, out, progress=False, log=_quiet)
    reference = {p.name: p.read_bytes() for p in out.glob("*.bin")}
    # simulate an interruption while file 1 was being written: its record is gone, a temp file remains
    (out / "parts" / "part-01.json").unlink()
    (out / "part-01-0000.bin").unlink()
    (out / "part-01-0000.bin.tmp").write_bytes(b"half")
    done_mtime = (out / "part-00-0000.bin").stat().st_mtime_ns
    messages = []
    preprocess(tmp_path / "in", tok_dir, out, progress=False, log=messages.append)
    assert "2 of 3 input files already done" in messages[0]
    assert (out / "part-00-0000.bin").stat().st_mtime_ns == done_mtime
    assert {p.name: p.read_bytes() for p in out.glob("*.bin")} == reference
    assert not list(out.glob("*.tmp"))


def test_different_settings_in_the_same_output_are_refused(tmp_path, tok_dir):
    _corpus(tmp_path / "in")
    preprocess(tmp_path / "in", tok_dir, tmp_path / "out", progress=False, log=_quiet)
    with pytest.raises(DataError, match="different settings \\(append_eos, eos_id\\)"):
        preprocess(tmp_path / "in", tok_dir, tmp_path / "out", append_eos=False, progress=False, log=_quiet)


def test_bad_inputs_name_the_file_and_row(tmp_path, tok_dir):
    (tmp_path / "nocol").mkdir()
    pq.write_table(pa.table({"content": ["a"]}), tmp_path / "nocol" / "x.parquet")
    with pytest.raises(DataError, match=r"x\.parquet: no column 'text'.*columns: content"):
        preprocess(tmp_path / "nocol", tok_dir, tmp_path / "o1", progress=False, log=_quiet)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "b.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=r"b\.parquet: not a readable parquet file"):
        preprocess(tmp_path / "broken", tok_dir, tmp_path / "o2", progress=False, log=_quiet)
    (tmp_path / "ints").mkdir()
    pq.write_table(pa.table({"text": pa.array(["ok", "ok"]), "n": [1, 2]}), tmp_path / "ints" / "a.parquet")
    pq.write_table(pa.table({"text": pa.array([1, 2])}), tmp_path / "ints" / "b.parquet")
    with pytest.raises(DataError, match=r"b\.parquet: row 0: column 'text' holds int, not text"):
        preprocess(tmp_path / "ints", tok_dir, tmp_path / "o3", progress=False, log=_quiet)
    # the good file's completed output survives the failure
    assert (tmp_path / "o3" / "parts" / "a.json").is_file()


def test_cli_preprocess_and_one_line_errors(tmp_path, tok_dir, capsys):
    _corpus(tmp_path / "in", files=1)
    assert (
        main(
            [
                "preprocess",
                "--input",
                str(tmp_path / "in"),
                "--tokenizer",
                tok_dir,
                "--output",
                str(tmp_path / "out"),
                "--no-progress",
                "--bos",
                "--no-eos",
            ]
        )
        == 2
    )  # the toy tokenizer has no BOS
    assert "has no BOS token" in capsys.readouterr().err
    assert (
        main(
            [
                "preprocess",
                "--input",
                str(tmp_path / "in"),
                "--tokenizer",
                tok_dir,
                "--output",
                str(tmp_path / "out"),
                "--no-progress",
                "--shard-tokens",
                "64",
            ]
        )
        == 0
    )
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["totals"]["docs"] == 28 and manifest["totals"]["shards"] > 1
    assert (
        main(
            [
                "preprocess",
                "--input",
                str(tmp_path / "missing"),
                "--tokenizer",
                tok_dir,
                "--output",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "no such input directory" in capsys.readouterr().err


def test_cli_quickstart(tmp_path, qs_cache):
    assert (
        main(["preprocess", "--quickstart", "--split", "validation", "--output", str(tmp_path / "qs"), "--no-progress"])
        == 0
    )
    manifest = json.loads((tmp_path / "qs" / "manifest.json").read_text())
    assert manifest["totals"]["docs"] == 200 and manifest["tokenizer"]["name"] == "embedded:quickstart"
