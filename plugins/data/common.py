"""Pieces every data source of this plugin shares: path resolution, state checks, drop accounting."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from argonne_kit.errors import DataError

if TYPE_CHECKING:
    from argonne_kit.contracts.data import DataContext

log = logging.getLogger("argonne_kit.data")


def resolve_path(path: str, recipe_dir: str) -> Path:
    """A config path: absolute as given (``~`` expanded), relative against the recipe's directory."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else Path(recipe_dir) / candidate


def digest(*parts: Any) -> str:
    """A short stable hash of JSON-able parts."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_state(name: str, state: dict[str, Any], fingerprint: str, ctx: DataContext | None = None) -> None:
    """Refuse a state saved by a different source, different data or (for rank-local streams) a
    different rank layout."""
    if state.get("source") != name:
        raise DataError(f"{name}: cannot resume from a {state.get('source')!r} data state")
    if state.get("fingerprint") != fingerprint:
        raise DataError(
            f"{name}: the data or the settings that shape batches changed since the checkpoint "
            f"(fingerprint {state.get('fingerprint')} → {fingerprint}); exact resume is impossible"
        )
    if ctx is not None and (state.get("dp_rank"), state.get("dp_world"), state.get("micro_batch_size")) != (
        ctx.dp_rank,
        ctx.dp_world,
        ctx.micro_batch_size,
    ):
        raise DataError(
            f"{name}: data state of rank {state.get('dp_rank')}/{state.get('dp_world')} "
            f"(micro-batch {state.get('micro_batch_size')}) cannot resume rank "
            f"{ctx.dp_rank}/{ctx.dp_world} (micro-batch {ctx.micro_batch_size}); this source's "
            f"position is per rank — resume with the same layout"
        )


class DropLog:
    """Counts dropped rows by source and reason, remembers the first file:row of each reason,
    and aborts when too large a fraction is dropped (D-6: never a silent resample)."""

    def __init__(self, name: str, max_drop_frac: float):
        self.name = name
        self.max_drop_frac = max_drop_frac
        self.counts: Counter[tuple[str, str]] = Counter()
        self.first: dict[str, str] = {}
        self.seen: Counter[str] = Counter()

    def saw(self, source: str) -> None:
        self.seen[source] += 1

    def drop(self, source: str, reason: str, where: str) -> None:
        self.counts[(source, reason)] += 1
        self.first.setdefault(reason, where)

    @property
    def dropped(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        total = sum(self.seen.values())
        lines = [f"{self.name}: dropped {self.dropped:,} of {total:,} rows"]
        for source in sorted(self.seen):
            for (src, reason), count in sorted(self.counts.items()):
                if src == source:
                    lines.append(
                        f"  {source}: {reason}: {count:,} of {self.seen[source]:,} "
                        f"({count / self.seen[source]:.1%}; first at {self.first[reason]})"
                    )
        return "\n".join(lines)

    def check(self, minimum_seen: int = 0) -> None:
        """Raise DataError when any source (or the whole) drops more than ``max_drop_frac``."""
        total = sum(self.seen.values())
        if total < max(minimum_seen, 1):
            return
        per_source: Counter[str] = Counter()
        for (source, _reason), count in self.counts.items():
            per_source[source] += count
        worst = [(s, per_source[s] / self.seen[s]) for s in self.seen if self.seen[s] and per_source[s]]
        over = [(s, f) for s, f in worst if f > self.max_drop_frac]
        if over or self.dropped / total > self.max_drop_frac:
            details = "; ".join(line.strip() for line in self.summary().splitlines()[1:])
            raise DataError(
                f"{self.name}: dropped {self.dropped:,} of {total:,} rows, above max_drop_frac = "
                f"{self.max_drop_frac} ({details}) — fix the data or raise the limit (rows are never "
                f"resampled)"
            )

    def state(self) -> dict[str, Any]:
        return {
            "counts": [[s, r, c] for (s, r), c in sorted(self.counts.items())],
            "first": dict(self.first),
            "seen": dict(self.seen),
        }

    def load(self, state: dict[str, Any]) -> None:
        self.counts = Counter({(s, r): c for s, r, c in state["counts"]})
        self.first = dict(state["first"])
        self.seen = Counter(state["seen"])

    def as_stats(self) -> dict[str, int]:
        out: dict[str, int] = {"rows_seen": sum(self.seen.values()), "rows_dropped": self.dropped}
        for (_source, reason), count in self.counts.items():
            key = "dropped_" + reason.replace(" ", "_")
            out[key] = out.get(key, 0) + count
        return out
