"""Helpers of the eval tests."""

from __future__ import annotations

import json
from pathlib import Path


def val_loss(run_dir: Path) -> float:
    """The last validation loss a run recorded in its metrics.jsonl."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["val_loss"] for r in records if "val_loss" in r][-1]
