"""Checkpoint I/O: save and load MB/s of an fp32 model + AdamW state through the kit's
``CheckpointManager`` vs writing and reading the same number of bytes as one plain file.

The state: an Argonne-shaped model of about ``--params`` parameters (vocab 32,768 and d 2048
from 0.6B up, d 1024 from 0.1B; smaller ones vocab 4,096, d 256; layers to reach the count) with its AdamW moments (one optimizer step on zero
gradients), i.e. 12 bytes per parameter. The ``kit save`` row times ``CheckpointManager.save``
with every guarantee of a run (non-finite gate, temporary directory, the strategy's write,
trainer state, manifest, read-back verification, fsync, atomic rename, ``latest``, retention):
the time the training loop is stalled by a synchronous save. Retention renames the previous
checkpoint at once and deletes its files on a helper thread, which the row waits for untimed
(the loop does not wait for it) so that it does not slow the next row. ``kit load`` times
``CheckpointManager.load`` into the same model and optimizer. ``raw write`` writes the
checkpoint's byte count from memory in 64 MiB blocks to a new file and fsyncs (then deletes the
previous one, untimed); ``raw read`` reads it back with ``readinto``. Before every read the
files' page cache is dropped (``posix_fadvise(DONTNEED)`` after an fsync, per file, nothing
system-wide), so reads come from the disk, not memory. ``--control`` repeats the raw write (A/A).
Rows alternate in ABBA order; MB = 10^6 bytes; wall clock (this is I/O).

Rows are the :data:`SAVE_ROWS` table (name → function returning seconds). ``kit save (async…)``
times ``save`` with ``checkpoint.async_save``: what the loop is stalled for (the host copy); the
background write, verification and rename are waited for outside the timing. Its stall relative
to the synchronous save is the ratio of their MB/s figures. The first asynchronous save, which
allocates the host copy that later ones overwrite in place, is printed before the rows; then one
round of the save rows runs untimed (a warm-up: see the comment in :func:`main`).

``--phases N`` instead times N synchronous saves phase by phase (wall clock spent inside each of
:data:`PHASES`; the rest of ``save`` is "other") and prints no rows.

    python benchmarks/checkpoint_io.py [--params 1e9] [--reps 2] [--dir DIR] [--control] [--phases N]
                                        [--threads N]
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import abba, host_line, ratio_table

BLOCK = 64 * 2**20


def build_state(params: float):
    """(model, optimizer) with about ``params`` fp32 parameters and AdamW moments."""
    import torch

    from argonne_kit.model import ArgonneConfig, ArgonneForCausalLM

    vocab = 32768 if params >= 1e8 else 4096
    d = 2048 if params >= 6e8 else 1024 if params >= 1e8 else 256
    ffn = d * 8 // 3 // 128 * 128
    per_layer = d * d * 2 + d * (d // 4) * 2 + 3 * d * ffn + 2 * d
    layers = max(1, round((params - vocab * d) / per_layer))
    config = ArgonneConfig(
        vocab_size=vocab,
        hidden_size=d,
        num_hidden_layers=layers,
        num_attention_heads=d // 128,
        num_key_value_heads=max(1, d // 512),
        intermediate_size=ffn,
        tie_word_embeddings=True,
    )
    with torch.device("meta"):
        model = ArgonneForCausalLM(config)
    model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    for p in model.parameters():
        p.data.uniform_(-0.02, 0.02, generator=generator)
        p.grad = torch.zeros_like(p)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    optimizer.step()  # creates exp_avg / exp_avg_sq
    optimizer.zero_grad(set_to_none=True)
    return model, optimizer


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def drop_cache(path: Path) -> None:
    """Evict ``path``'s files (or the file) from the page cache, so the next read hits the disk."""
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    for file in files:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class Bench:
    """The state, a run directory and a raw file, and one timed function per row."""

    def __init__(self, params: float, workdir: Path):
        from argonne_kit.registry import get_registry
        from argonne_kit.train.checkpoint import CheckpointManager

        self.model, self.optimizer = build_state(params)
        self.params = sum(p.numel() for p in self.model.parameters())
        component = get_registry().get("parallel", "single")
        self.strategy = component.factory(component.config_cls())
        self.strategy.setup("cpu")
        self.workdir = workdir
        self.manager = CheckpointManager(workdir / "run", self.strategy, keep_last=1, log=lambda _m: None)
        self.background = CheckpointManager(
            workdir / "async_run", self.strategy, keep_last=1, log=lambda _m: None, async_save=True
        )
        self.step = 0
        self.saved: Path | None = None
        self.raw = workdir / "raw.bin"
        self.nbytes = 0

    def kit_save(self) -> float:
        self.step += 1
        start = time.perf_counter()
        self.saved = self.manager.save(
            self.model,
            self.optimizer,
            self.step,
            self.step * 1000,
            {"global_step": self.step},
            "# checkpoint_io benchmark\n",
        )
        seconds = time.perf_counter() - start
        assert self.saved is not None, "the save was refused"
        self.manager.wait()  # retention's deletion of the previous checkpoint
        self.nbytes = tree_bytes(self.saved)
        return seconds

    def kit_async_save(self) -> float:
        """The loop's stall with ``checkpoint.async_save``: ``save`` returns after the host copy;
        the write, the verification and the rename finish in the background (waited for, untimed)."""
        self.step += 1
        start = time.perf_counter()
        self.background.save(
            self.model, self.optimizer, self.step, self.step * 1000, {"global_step": self.step}, "# async\n"
        )
        seconds = time.perf_counter() - start
        assert self.background.wait(), "the background save failed"
        return seconds

    def kit_load(self) -> float:
        drop_cache(self.saved)
        start = time.perf_counter()
        self.manager.load(self.saved, self.model, self.optimizer)
        return time.perf_counter() - start

    def raw_write(self) -> float:
        """Write a new file while the previous one still exists, then delete that one (untimed):
        the same page-cache footprint as a checkpoint save, which keeps the previous checkpoint
        until the new one is verified (overwriting one file would reuse its freed pages)."""
        block = bytearray(os.urandom(1024)) * (BLOCK // 1024)
        previous, self.raw = self.raw, self.workdir / f"raw{self.step}-{time.monotonic_ns()}.bin"
        start = time.perf_counter()
        with open(self.raw, "wb") as f:
            left = self.nbytes
            while left > 0:
                f.write(memoryview(block)[: min(left, BLOCK)])
                left -= BLOCK
            f.flush()
            os.fsync(f.fileno())
        seconds = time.perf_counter() - start
        previous.unlink(missing_ok=True)
        return seconds

    def raw_read(self) -> float:
        drop_cache(self.raw)
        block = bytearray(BLOCK)
        start = time.perf_counter()
        with open(self.raw, "rb", buffering=0) as f:
            while f.readinto(block):
                pass
        return time.perf_counter() - start


#: row name → Bench method; save rows are compared with "raw write", load rows with "raw read".
SAVE_ROWS = {
    "kit save (sync: the loop's stall)": Bench.kit_save,
    "kit save (async: the loop's stall)": Bench.kit_async_save,
    "raw write": Bench.raw_write,
}
LOAD_ROWS = {"kit load": Bench.kit_load, "raw read": Bench.raw_read}


#: phase → (module, attribute) whose calls are timed by ``--phases``.
PHASES = {
    "non-finite gate": ("argonne_kit.train.checkpoint", "nonfinite_parameters"),
    "torch.save": ("torch", "save"),
    "fsync": ("os", "fsync"),
    "rest of the checksum": ("argonne_kit.safe_io", "TrailingSha256.finish"),
    "manifest checksums": ("argonne_kit.train.checkpoint", "checksum_files"),
    "read-back verification": ("argonne_kit.train.checkpoint", "verify_checkpoint"),
    "retention": ("argonne_kit.train.checkpoint", "CheckpointManager.prune"),
}


def time_phases(bench: Bench, saves: int) -> None:
    """Print, for each of ``saves`` synchronous saves, the wall seconds spent in each phase."""
    spent: dict[str, float] = {}

    def timed(label, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - start

        return wrapper

    for label, (module, attribute) in PHASES.items():
        owner = importlib.import_module(module)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, name, timed(label, getattr(owner, name)))
    for _ in range(saves):
        spent.clear()
        total = bench.kit_save()
        other = total - sum(spent.values())
        parts = ", ".join(f"{label} {seconds:.2f}" for label, seconds in spent.items())
        print(f"  sync save {bench.nbytes / 1e6:,.0f} MB in {total:.2f} s: {parts}, other {other:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=float, default=1e9, help="parameters of the model (default 1e9)")
    parser.add_argument("--reps", type=int, default=2, help="measurements per row, ABBA order (default 2)")
    parser.add_argument("--dir", default=None, help="where to write (default: a temporary directory)")
    parser.add_argument("--control", action="store_true", help="also repeat the raw write (A/A)")
    parser.add_argument("--phases", type=int, default=0, help="time N sync saves phase by phase instead")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1); they copy the state for an async save and sum it for the finite checks",
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(host_line(args.threads))
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        bench = Bench(args.params, Path(tmp))
        print(
            f"state: {bench.params / 1e6:,.0f}M fp32 parameters + AdamW moments in {tmp} "
            f"({shutil.disk_usage(tmp).free / 1e9:,.0f} GB free there); wall clock",
            flush=True,
        )
        bench.kit_save()  # the byte count the raw rows write, and a first save to load from
        if args.phases:
            time_phases(bench, args.phases)
            return
        # the first asynchronous save allocates the host copy that later saves overwrite in place:
        # reported, not a row (a training loop pays it once per run)
        print(f"  first async save's stall (allocates the host copy): {bench.kit_async_save():.2f} s", flush=True)
        save_rows = dict(SAVE_ROWS) | ({"raw write (A/A control)": Bench.raw_write} if args.control else {})
        # one untimed round first: until every row's files exist once, each write grows the page
        # cache into memory never used before, which costs the first row 2-3x its time here
        warmup = time.perf_counter()
        for row in save_rows.values():
            row(bench)
        print(f"  warm-up round of the save rows (untimed): {time.perf_counter() - warmup:.2f} s", flush=True)
        rates: dict[str, list[float]] = {}
        for group in (save_rows, LOAD_ROWS):
            for rep, name in abba(list(group), args.reps):
                seconds = group[name](bench)
                rates.setdefault(name, []).append(bench.nbytes / 1e6 / seconds)
                print(
                    f"  rep {rep} {name:<34} {bench.nbytes / 1e6:,.0f} MB in {seconds:6.2f} s = "
                    f"{rates[name][-1]:8,.0f} MB/s",
                    flush=True,
                )
        print("MB/s (best / median; ratio vs the raw row: of best / of median / paired; target >= 0.5)")
        print(
            "\n".join(
                ratio_table({n: rates[n] for n in save_rows}, "raw write", "MB/s", "{:,.0f}", higher_is_better=True)
            )
        )
        print(
            "\n".join(
                ratio_table({n: rates[n] for n in LOAD_ROWS}, "raw read", "MB/s", "{:,.0f}", higher_is_better=True)
            )
        )


if __name__ == "__main__":
    main()
