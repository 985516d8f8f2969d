"""Deterministic orders and ordered parallel work — the two tools exact resume rests on.

- :class:`Permutation` — a seeded pseudo-random bijection of ``range(n)`` computed per index
  (a Feistel network with cycle walking), so shuffling billions of windows costs no memory and
  position ``p`` of epoch ``e`` can be recomputed after a resume. Different seeds give different
  orders (D-7).
- :func:`ordered_map` — ``fn(start), fn(start+1), …`` computed by ``num_workers`` DataLoader
  worker processes and yielded strictly in index order. The result is the same for any worker
  count, and resuming is just starting again at the next index: no loader state to restore.

Why not torchdata's ``StatefulDataLoader``: its state is the number of batches one loader has
yielded plus per-worker dataset state, restored into the same loader configuration. A data
source's position here is one global index into a seeded order: the same batches come out for any
worker count, a resume may change the worker count, and a source can map the position onto a new
global batch size (``bin_shards`` does). The stateful loader would add a second, less general copy
of that position, and used only as a worker pool it adds nothing over torch's DataLoader.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

_ROUNDS = 6
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any printable parts (``derive_seed(seed, "epoch", 3)``)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


class Permutation:
    """A seeded bijection of ``range(n)``; ``perm(indices)`` maps an int or an int array."""

    def __init__(self, n: int, seed: int):
        if n <= 0:
            raise ValueError(f"cannot permute {n} items")
        self.n = n
        bits = max(2, (n - 1).bit_length())
        bits += bits % 2
        self.half = np.uint64(bits // 2)
        self.mask = np.uint64((1 << (bits // 2)) - 1)
        self.keys = [np.uint64(derive_seed(seed, "feistel", r)) for r in range(_ROUNDS)]

    def _round_trip(self, x: np.ndarray) -> np.ndarray:
        left, right = x >> self.half, x & self.mask
        with np.errstate(over="ignore"):
            for key in self.keys:
                left, right = right, left ^ (_mix(right ^ key) & self.mask)
        return (left << self.half) | right

    def __call__(self, index):
        scalar = np.isscalar(index)
        x = np.atleast_1d(np.asarray(index, dtype=np.uint64))
        if x.size and int(x.max()) >= self.n:
            raise IndexError(f"index out of range for a permutation of {self.n}")
        y = self._round_trip(x)
        outside = y >= self.n
        while outside.any():  # cycle walking: at most a few rounds, the domain is < 4n
            y[outside] = self._round_trip(y[outside])
            outside = y >= self.n
        y = y.astype(np.int64)
        return int(y[0]) if scalar else y


def _identity(item: Any) -> Any:
    return item


def ordered_map(fn: Callable[[int], Any], start: int, num_workers: int = 0, prefetch_factor: int = 2) -> Iterator[Any]:
    """Yield ``fn(i)`` for ``i = start, start + 1, …`` forever, in order. With ``num_workers > 0``,
    worker ``w`` computes the indices ``≡ w (mod num_workers)`` and the DataLoader's round-robin
    collection restores the order. ``fn`` must be picklable when the start method is not fork."""
    if num_workers <= 0:
        index = start
        while True:
            yield fn(index)
            index += 1
    import torch.utils.data as tud

    class _Strided(tud.IterableDataset):
        def __iter__(self):
            info = tud.get_worker_info()
            index = start + (info.id if info else 0)
            step = info.num_workers if info else 1
            while True:
                yield fn(index)
                index += step

    from argonne_kit.train.stop import ignore_stop_signals

    # workers leave SIGTERM/SIGINT to the main process, which saves and then ends them
    loader = tud.DataLoader(
        _Strided(),
        batch_size=None,
        num_workers=num_workers,
        collate_fn=_identity,
        prefetch_factor=prefetch_factor,
        in_order=True,
        worker_init_fn=ignore_stop_signals,
    )
    yield from loader
