"""``fineweb_parquet``: on-the-fly tokenization packs exactly like the preprocessed shards; exact resume."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from datatest_utils import assert_same_batches, check_exact_resume, take

from argonne_kit.errors import DataError


@pytest.mark.parametrize("workers", [0, 2])
def test_exact_resume_with_shuffle(make_source, qs_cache, workers):
    config = {"split": "validation", "shuffle": True, "chunk_rows": 16, "num_workers": workers}
    check_exact_resume(lambda: make_source("fineweb_parquet", config, B=2, T=64), 6, 4)


def test_same_windows_as_preprocessed_shards(make_source, qs_cache):
    from argonne_kit.data.embedded import ensure_quickstart_shards

    ensure_quickstart_shards("validation", qs_cache)
    streamed = take(make_source("fineweb_parquet", {"split": "validation"}, B=2, T=32), 20)
    preprocessed = take(make_source("bin_shards", {"split": "validation"}, B=2, T=32), 20)
    assert_same_batches(preprocessed, streamed)


def test_ranks_read_disjoint_documents_and_seeds_matter(make_source, qs_cache):
    a = take(make_source("fineweb_parquet", {"split": "validation", "chunk_rows": 10}, rank=0, world=2), 3)
    b = take(make_source("fineweb_parquet", {"split": "validation", "chunk_rows": 10}, rank=1, world=2), 3)
    assert not torch.equal(a[0]["input_ids"], b[0]["input_ids"])
    s1 = take(make_source("fineweb_parquet", {"split": "validation", "shuffle": True}, seed=1), 2)
    s2 = take(make_source("fineweb_parquet", {"split": "validation", "shuffle": True}, seed=2), 2)
    assert not torch.equal(s1[0]["input_ids"], s2[0]["input_ids"])


def test_empty_rows_are_counted_and_bad_columns_named(make_source, tmp_path):
    (tmp_path / "d").mkdir()
    pq.write_table(
        pa.table({"text": ["one two three four five six seven", None, "", "eight nine ten"] * 20}),
        tmp_path / "d" / "a.parquet",
    )
    source = make_source("fineweb_parquet", {"path": str(tmp_path / "d")}, B=1, T=8)
    take(source, 3)
    assert source.stats()["empty_rows"] > 0
    with pytest.raises(DataError, match=r"a\.parquet: no column 'body'"):
        make_source("fineweb_parquet", {"path": str(tmp_path / "d"), "text_column": "body"})
