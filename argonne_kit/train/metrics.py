"""Where progress goes: ``metrics.jsonl`` (+ TensorBoard events) and the console.

Only the main rank writes. ``metrics.jsonl`` has one JSON object per logged step (``step``,
``loss``, ``lr``, ``tokens``, ``tokens_per_s``, ``grad_norm``, …) or per validation
(``step``, ``val_loss``). On resume the records past the resumed step are dropped, so a
re-trained step never appears twice.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from argonne_kit.safe_io import atomic_write_text

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    """Appends JSON lines (flushed per record) and mirrors numbers to TensorBoard if asked."""

    def __init__(self, run_dir: Path, *, tensorboard: bool, log=print):
        self.path = Path(run_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a")  # noqa: SIM115 — held open for the run's life, closed by close()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
            except ImportError:
                log(
                    "logging: tensorboard = true but the 'tensorboard' package is not installed; "
                    "writing metrics.jsonl only (pip install tensorboard)"
                )

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tb is not None:
            step = record.get("step", 0)
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self.tb.add_scalar(key, value, step)

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def truncate_after(run_dir: Path, step: int) -> None:
    """Drop metric records with ``step`` > ``step`` (they belong to steps a resume re-trains)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if record.get("step", 0) <= step:
            kept.append(line)
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_FILE
    if path.is_dir():
        path = path / METRICS_FILE
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """A tqdm bar on an interactive terminal, plain lines otherwise (``logging.progress``)."""

    def __init__(self, mode: str, total: int, initial: int, enabled: bool):
        self.enabled = enabled
        interactive = sys.stderr.isatty()
        self.bar = None
        if enabled and (mode == "bar" or (mode == "auto" and interactive)):
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
        self.total = total
        self.start_step = initial
        self.start_time = time.monotonic()

    def update(self, step: int, record: dict[str, Any], *, log_line: bool) -> None:
        if not self.enabled:
            return
        done = step - self.start_step
        rate = done / max(1e-9, time.monotonic() - self.start_time)
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        if self.bar is not None:
            self.bar.n = step
            self.bar.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_s']:,.0f}", refresh=False)
            self.bar.refresh()
        elif log_line:
            eta_s = format_duration(eta) if math.isfinite(eta) else "?"
            print(
                f"step {step}/{self.total} | loss {record['loss']:.4f} | lr {record['lr']:.3e} | "
                f"grad_norm {record['grad_norm']:.3f} | tok/s {record['tokens_per_s']:,.0f} | "
                f"tokens {record['tokens']:,} | eta {eta_s}",
                flush=True,
            )

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
