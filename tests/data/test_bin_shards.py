"""``bin_shards``: exact resume (shuffle on, 0 and 2 workers), rank-disjoint windows, seeded
orders (D-7), no token lost to chunking (D-20), document mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datatest_utils import check_exact_resume, roundtrip, take

from argonne_kit.data.shards import write_shard
from argonne_kit.errors import DataError


@pytest.fixture
def shard_dir(tmp_path):
    """Three shards of 60 documents of 3..40 tokens (ids = document index), plus lengths."""
    rng = np.random.default_rng(0)
    out = tmp_path / "shards"
    out.mkdir()
    for s in range(3):
        lengths = rng.integers(3, 40, size=20)
        tokens = np.concatenate([np.full(n, 500 + s * 20 + d) for d, n in enumerate(lengths)])
        write_shard(out / f"s{s}.bin", tokens)
        np.save(out / f"s{s}.lengths.npy", lengths.astype(np.uint32))
    return out


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("mode", ["packed", "document"])
def test_exact_resume_with_shuffle(make_source, shard_dir, workers, mode):
    config = {"path": str(shard_dir), "shuffle": True, "mode": mode, "num_workers": workers}
    T = 8 if mode == "packed" else 4
    source = make_source("bin_shards", config, B=3, T=T)
    per_epoch = source.steps_per_epoch
    reference = check_exact_resume(lambda: make_source("bin_shards", config, B=3, T=T), per_epoch - 2, 5)
    assert not torch.equal(reference[0]["input_ids"], reference[per_epoch]["input_ids"])  # a new epoch, a new order


def test_unshuffled_epoch_is_the_token_stream(make_source, shard_dir):
    stream = np.concatenate([np.fromfile(shard_dir / f"s{s}.bin", dtype="<u4", offset=1024) for s in range(3)])
    T, B = 7, 2
    source = make_source("bin_shards", {"path": str(shard_dir)}, B=B, T=T)
    batches = take(source, source.steps_per_epoch)
    windows = torch.cat([b["input_ids"] for b in batches])
    assert windows.shape[1] == T + 1
    rebuilt = torch.cat([windows[:, :-1].reshape(-1), windows[-1:, -1]]).numpy()
    assert np.array_equal(rebuilt, stream[: len(rebuilt)])  # packed across documents: nothing dropped (D-20)
    assert len(stream) - len(rebuilt) < B * T + 1  # only the tail short of one global batch is unused


def test_ranks_get_disjoint_windows_covering_the_epoch(make_source, tmp_path):
    write_shard(
        tmp_path / "unique.bin", np.arange(950, dtype=np.uint32)
    )  # every window is distinct (ids inside the vocabulary)

    def epoch_windows(rank):
        source = make_source(
            "bin_shards", {"path": str(tmp_path / "unique.bin"), "shuffle": True}, rank=rank, world=2, B=2, T=5
        )
        return {tuple(row.tolist()) for b in take(source, source.steps_per_epoch) for row in b["input_ids"]}, source

    rank0, source = epoch_windows(0)
    rank1, _ = epoch_windows(1)
    assert not rank0 & rank1
    assert len(rank0 | rank1) == source.steps_per_epoch * 4


def test_seeds_change_the_order(make_source, shard_dir):
    config = {"path": str(shard_dir), "shuffle": True}
    a = take(make_source("bin_shards", config, seed=1), 3)
    b = take(make_source("bin_shards", config, seed=1), 3)
    c = take(make_source("bin_shards", config, seed=2), 3)
    assert all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(a, b))
    assert not all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(a, c))  # D-7


def test_document_mode_keeps_each_window_inside_one_document(make_source, shard_dir):
    source = make_source("bin_shards", {"path": str(shard_dir), "mode": "document", "shuffle": True}, B=4, T=9)
    for batch in take(source, source.steps_per_epoch):
        for row in batch["input_ids"]:
            assert len(set(row.tolist())) == 1  # documents are runs of one id
    assert source.skipped_docs > 0 and source.stats()["skipped_short_documents"] == source.skipped_docs
    assert source.size().tokens == source.steps_per_epoch * 4 * 9


def test_changed_micro_batch_continues_without_overlap(make_source, shard_dir):
    first = make_source("bin_shards", {"path": str(shard_dir)}, B=2, T=6)
    seen = take(first, 3)
    resumed = make_source("bin_shards", {"path": str(shard_dir)}, B=3, T=6)
    resumed.load_state_dict(roundtrip(first.state_dict()))
    nxt = take(resumed, 1)[0]["input_ids"]
    expected_start = 3 * 2 * 6
    assert nxt[0, 0].item() == np.fromfile(shard_dir / "s0.bin", dtype="<u4", offset=1024)[expected_start]
    assert seen[-1]["input_ids"][-1, -1].item() == nxt[0, 0].item()  # contiguous with what was read


def test_refusals(make_source, shard_dir, tmp_path, qs_cache):
    other = make_source("bin_shards", {"path": str(shard_dir), "shuffle": True}, B=2, T=6)
    with pytest.raises(DataError, match="fingerprint"):
        make_source("bin_shards", {"path": str(shard_dir)}, B=2, T=6).load_state_dict(other.state_dict())
    with pytest.raises(DataError, match="less than one global batch"):
        make_source("bin_shards", {"path": str(shard_dir)}, B=512, T=64)
    data = (shard_dir / "s1.bin").read_bytes()
    (shard_dir / "s1.bin").write_bytes(data[:-4])
    with pytest.raises(DataError, match=r"s1\.bin: truncated token shard"):
        make_source("bin_shards", {"path": str(shard_dir)})


def test_embedded_corpus_and_relative_paths(make_source, qs_cache, tmp_path):
    from argonne_kit.data.embedded import ensure_quickstart_shards

    batch = take(make_source("bin_shards", {}, B=2, T=16), 1)[0]["input_ids"]
    assert batch.shape == (2, 17) and int(batch.max()) < 1024
    shards = ensure_quickstart_shards("validation", qs_cache)
    link = tmp_path / "recipes"
    link.mkdir()
    (link / "val").symlink_to(shards)
    source = make_source("bin_shards", {"path": "val"}, recipe_dir=link)
    assert source.size().tokens > 0
