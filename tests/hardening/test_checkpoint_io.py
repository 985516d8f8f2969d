"""The fast paths of a checkpoint save keep its guarantees: the SHA-256 computed by the writer is
the file's, a failed fsync loses nothing, retention's deletion in the background leaves no
checkpoint half-deleted, the read-back verification still runs and refuses a bad file, the one-reduction finite
check misses no NaN/Inf, and the reused host copy of an asynchronous save holds the new state."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading

import pytest
import torch

from argonne_kit import safe_io
from argonne_kit.registry import get_registry
from argonne_kit.safe_io import (
    StorageError,
    atomic_write,
    safe_torch_load,
    save_torch_file,
    sha256_file,
    written_sha256,
)
from argonne_kit.train import checkpoint as ckpt
from argonne_kit.train.checkpoint import (
    MANIFEST_FILE,
    CheckpointManager,
    all_finite,
    host_copy,
    nonfinite_parameters,
    verify_checkpoint,
)


def _single_strategy():
    strategy = get_registry().get("parallel", "single").factory(None)
    strategy.setup(device="cpu")
    return strategy


MIB = 1 << 20


def _state() -> dict:
    """A tensor of a few MiB, a small one, a tied pair, plain values."""
    generator = torch.Generator().manual_seed(0)
    big = torch.randn(MIB + 1000, generator=generator)
    return {"big": big, "tied": big, "small": torch.arange(10), "step": 7, "name": "x"}


def test_the_checksum_computed_by_the_writer_is_the_files(tmp_path):
    path = tmp_path / "state.pt"
    save_torch_file(_state(), path)
    assert written_sha256(path) == sha256_file(path)
    loaded = safe_torch_load(path)  # written without the zip CRC-32: torch.load still reads it
    assert torch.equal(loaded["big"], _state()["big"]) and loaded["tied"] is loaded["big"]


def test_a_buffer_reused_after_write_returns_does_not_change_the_checksum(tmp_path):
    """The digest is the file's bytes: a caller that refills its buffer at once (as torch's
    writer may) cannot make it differ from the file."""
    path = tmp_path / "blob"
    buffer = bytearray(2 * MIB)
    with atomic_write(path, checksum=True) as handle:
        for fill in range(4):
            buffer[:] = bytes([fill]) * len(buffer)
            handle.write(buffer)
            handle.write(b"small")
    expected = hashlib.sha256(b"".join(bytes([f]) * len(buffer) + b"small" for f in range(4))).hexdigest()
    assert written_sha256(path) == sha256_file(path) == expected


def test_a_file_changed_after_writing_has_no_recorded_checksum(tmp_path):
    path = tmp_path / "state.pt"
    save_torch_file(_state(), path)
    stat = os.stat(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    with open(path, "r+b") as handle:  # same inode, same size: only the modification time differs
        handle.write(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert written_sha256(path) is None
    assert written_sha256(tmp_path / "missing") is None
    save_torch_file(_state(), path)
    assert written_sha256(path) == sha256_file(path)
    assert written_sha256(path) is None  # handed out once


def test_checksum_needs_a_binary_mode(tmp_path):
    with pytest.raises(ValueError, match="binary mode"), atomic_write(tmp_path / "t", "w", checksum=True):
        pass


def test_a_failed_fsync_while_hashing_keeps_the_old_file(tmp_path, monkeypatch):
    """The fsync runs while the helper thread finishes the hash: its error still stops the rename
    and the helper."""
    path = tmp_path / "state.pt"
    save_torch_file({"old": torch.ones(3)}, path)
    written_sha256(path)

    def failing_fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(safe_io.os, "fsync", failing_fsync)
    with pytest.raises(StorageError, match=f"cannot write {path}: Input/output error"):
        save_torch_file(_state(), path)
    monkeypatch.undo()
    assert torch.equal(safe_torch_load(path)["old"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]  # the temporary is gone
    assert written_sha256(path) is None


def _model_and_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(512, 600), torch.nn.Linear(600, 8))
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 512)).sum().backward()
    optimizer.step()
    return model, optimizer


def _save(manager, model, optimizer, step):
    return manager.save(model, optimizer, step, step * 10, {"global_step": step}, "x = 1\n")


def test_the_manifest_records_each_files_checksum_without_hashing_it_again(tmp_path, monkeypatch):
    hashed = []
    real = ckpt.sha256_file
    monkeypatch.setattr(ckpt, "sha256_file", lambda path: hashed.append(path.name) or real(path))
    model, optimizer = _model_and_optimizer()
    path = _save(CheckpointManager(tmp_path, _single_strategy(), log=lambda _m: None), model, optimizer, 2)
    files = json.loads((path / MANIFEST_FILE).read_text())["files"]
    assert {"state.pt", "extras.pt", "trainer_state_rank0.pt"} <= files.keys()
    for rel, record in files.items():  # an independent second read of every file
        assert record == {"size": (path / rel).stat().st_size, "sha256": real(path / rel)}, rel
    assert "state.pt" not in hashed and "trainer_state_rank0.pt" not in hashed  # hashed by the writer
    verify_checkpoint(path)  # the load-time verification (checksums included) accepts it


class CorruptsAfterWriting:
    """A strategy whose written ``state.pt`` gets a NaN in its largest tensor (a bad write)."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def save(self, state, path):
        self._inner.save(state, path)
        file = os.path.join(path, "state.pt")
        blob = torch.load(file, weights_only=True)
        blob["model"]["0.weight"][3, 5] = float("nan")
        torch.save(blob, file)


def test_the_read_back_verification_still_refuses_a_bad_file(tmp_path):
    strategy = _single_strategy()
    model, optimizer = _model_and_optimizer()
    messages: list[str] = []
    good = _save(CheckpointManager(tmp_path, strategy, log=messages.append), model, optimizer, 2)
    manager = CheckpointManager(tmp_path, CorruptsAfterWriting(strategy), log=messages.append)
    assert _save(manager, model, optimizer, 4) is None
    assert "read-back verification failed" in messages[-1] and "0.weight has non-finite values" in messages[-1]
    assert manager.checkpoints() == [(2, good)] and manager.latest() == good


def test_a_flipped_byte_after_the_save_fails_the_checksum(tmp_path):
    model, optimizer = _model_and_optimizer()
    path = _save(CheckpointManager(tmp_path, _single_strategy(), log=lambda _m: None), model, optimizer, 2)
    state = path / "state.pt"
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0x01
    state.write_bytes(bytes(data))
    with pytest.raises(Exception, match="state.pt: checksum mismatch"):
        verify_checkpoint(path)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_the_finite_check_misses_no_nan_or_inf(dtype):
    base = torch.randn(10_000).to(dtype)
    assert all_finite(base)
    for bad in ([float("nan")], [float("inf")], [float("-inf")], [float("inf"), float("-inf")]):
        tensor = base.clone()
        tensor[[17, 9_000][: len(bad)]] = torch.tensor(bad, dtype=dtype)
        assert not all_finite(tensor), (dtype, bad)
    huge = torch.full((1000,), torch.finfo(dtype).max / 2, dtype=dtype)  # finite, but its sum overflows
    assert all_finite(huge)
    assert all_finite(torch.arange(5)) and all_finite(torch.empty(0))


def test_the_gate_names_only_the_parameters_with_nan_or_inf():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    with torch.no_grad():
        model[1].bias[2] = float("nan")
        model[2].weight.fill_(torch.finfo(torch.float32).max)  # finite: must not be refused
    assert nonfinite_parameters(model) == ["1.bias"]


def test_the_reused_host_copy_holds_the_new_state_and_keeps_ties():
    model = torch.nn.Linear(8, 8)
    state = {"model": {"w": model.weight, "alias": model.weight, "b": model.bias}, "lr": [0.1]}
    first = host_copy(state)
    with torch.no_grad():
        model.weight.add_(1.0)
    second = host_copy(state, reuse=first)
    assert second["model"]["w"].data_ptr() == first["model"]["w"].data_ptr()  # overwritten, not allocated
    assert torch.equal(second["model"]["w"], model.weight.detach()) and second["model"]["alias"] is second["model"]["w"]
    assert second["model"]["w"].data_ptr() != model.weight.data_ptr()  # a copy, not the live tensor
    bigger = {"model": {"w": torch.zeros(9, 8), "alias": model.weight, "b": model.bias}, "lr": [0.1]}
    third = host_copy(bigger, reuse=second)  # a changed shape gets a new tensor
    assert third["model"]["w"].shape == (9, 8) and torch.equal(third["model"]["alias"], model.weight.detach())


def test_async_saves_with_the_reused_copy_write_each_steps_state(tmp_path):
    model, optimizer = _model_and_optimizer()
    manager = CheckpointManager(tmp_path, _single_strategy(), keep_last=3, log=lambda _m: None, async_save=True)
    expected = {}
    for step in (2, 4, 6):
        with torch.no_grad():
            model[0].weight.add_(1.0)
        expected[step] = model[0].weight.detach().clone()
        _save(manager, model, optimizer, step)
    assert manager.wait()
    for step, weight in expected.items():
        saved = torch.load(tmp_path / "checkpoints" / f"step_{step:08d}" / "state.pt", weights_only=True)
        assert torch.equal(saved["model"]["0.weight"], weight), step


def test_retention_deletes_in_the_background_and_wait_joins_it(tmp_path, monkeypatch):
    """The save returns while the old checkpoint's files are still being deleted: by then it is
    renamed to a temporary (never listed, collected at the next start if the process dies), and
    ``wait`` returns only once it is gone."""
    release = threading.Event()
    real_remove = ckpt.remove_path

    def slow_remove(path):
        if "delete-" in str(path) and os.path.exists(path):
            assert release.wait(30)
        real_remove(path)

    monkeypatch.setattr(ckpt, "remove_path", slow_remove)
    model, optimizer = _model_and_optimizer()
    manager = CheckpointManager(tmp_path, _single_strategy(), keep_last=1, log=lambda _m: None)
    first = _save(manager, model, optimizer, 2)
    second = _save(manager, model, optimizer, 4)  # returns with the deletion of step 2 blocked
    doomed = tmp_path / "checkpoints" / f"{ckpt.TMP_PREFIX}delete-{first.name}"
    assert doomed.is_dir() and not first.exists()
    assert manager.checkpoints() == [(4, second)] and manager.latest() == second
    release.set()
    assert manager.wait() and not doomed.exists()
    doomed.mkdir()  # as a process killed mid-deletion leaves it
    restarted = CheckpointManager(tmp_path, _single_strategy(), log=lambda _m: None)
    restarted.collect_stale()
    assert not doomed.exists() and restarted.checkpoints() == [(4, second)]


def test_the_trailing_hash_is_the_files_at_any_write_sizes(tmp_path):
    path = tmp_path / "blob"
    pieces = [os.urandom(n) for n in (3 * MIB, 7, safe_io.HASH_CHUNK + 5, 0, 5 * MIB, 1, 2 * safe_io.HASH_CHUNK)]
    with atomic_write(path, checksum=True) as handle:
        for piece in pieces:
            assert handle.write(piece) == len(piece)
    assert written_sha256(path) == hashlib.sha256(b"".join(pieces)).hexdigest() == sha256_file(path)


def test_the_trailing_hash_reports_a_file_shorter_than_written(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 100)
    with open(path, "rb") as handle:
        trailing = safe_io.TrailingSha256(handle.fileno())
        trailing.advance(150)
        with pytest.raises(OSError, match="file ends at 100 of 150 bytes written"):
            trailing.finish()


def test_a_failing_writer_keeps_its_error_and_stops_the_hash(tmp_path):
    path = tmp_path / "state.pt"
    with pytest.raises(RuntimeError, match="the writer failed"), atomic_write(path, checksum=True) as handle:
        handle.write(os.urandom(3 * MIB))
        raise RuntimeError("the writer failed")
    assert list(tmp_path.iterdir()) == [] and written_sha256(path) is None
    assert not [t for t in threading.enumerate() if t.name == "sha256"]
