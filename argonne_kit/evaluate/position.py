"""Mean NLL in position buckets (the long-context curves of the 3.5/4.0 releases)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import torch


def default_edges(seq_len: int, first: int = 1024) -> list[int]:
    """``0, first, 2·first, 4·first, …`` up to ``seq_len`` (a shorter context: quarters of it)."""
    if seq_len <= first:
        first = max(1, seq_len // 4)
    edges = [0, first]
    while edges[-1] < seq_len:
        edges.append(min(edges[-1] * 2, seq_len))
    return edges


class PositionBuckets:
    """Sums of NLL and counts per bucket ``[edges[i], edges[i+1])`` of positions. Position t is the
    0-based index of the last context token: the prediction made at t has seen t + 1 tokens."""

    def __init__(self, edges: list[int]):
        if len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError(f"bucket edges must increase: {edges}")
        self.edges = edges
        self.sums = torch.zeros(len(edges) - 1, dtype=torch.float64)
        self.counts = torch.zeros(len(edges) - 1, dtype=torch.float64)

    def add(self, nll: torch.Tensor) -> None:
        """Add ``nll [B, T]`` (column t: the prediction made at position t)."""
        positions = torch.arange(nll.size(1))
        index = torch.bucketize(positions, torch.tensor(self.edges[1:]), right=True)
        keep = index < len(self.edges) - 1
        self.sums.index_add_(0, index[keep], nll.detach().cpu().double()[:, keep].sum(0))
        self.counts.index_add_(0, index[keep], torch.full((int(keep.sum()),), float(nll.size(0)), dtype=torch.float64))

    def rows(self) -> list[dict]:
        return [
            {"from": a, "to": b, "tokens": int(c), "nll": (s / c).item() if c else math.nan}
            for a, b, s, c in zip(self.edges, self.edges[1:], self.sums, self.counts)
        ]

    def table(self) -> str:
        lines = [f"{'positions':>17}  {'tokens':>10}  {'mean NLL':>9}"]
        for row in self.rows():
            lines.append(f"{row['from']:>7,}–{row['to']:<9,}  {row['tokens']:>10,}  {row['nll']:>9.4f}")
        return "\n".join(lines)

    def plot(self, path: Path, label: str, trained_context: int | None = None) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = [r for r in self.rows() if r["tokens"]]
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot([(r["from"] + r["to"]) / 2 for r in rows], [r["nll"] for r in rows], "o-", label=label)
        if trained_context:
            ax.axvline(trained_context, color="grey", linestyle="--", label=f"trained context {trained_context:,}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("token position (bucket centre)")
        ax.set_ylabel("mean NLL")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path
