"""``plot``: loss and learning-rate curves of a run as a PNG (from its ``metrics.jsonl``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from argonne_kit.errors import DataError, UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="plot loss and LR of a run to a PNG",
        description="Read RUN_DIR/metrics.jsonl and write a PNG with the training loss "
        "(and validation loss, when recorded) over steps and the learning rate "
        "below it. Needs matplotlib (pip install 'argonne-kit[dev]').",
    )
    p.add_argument("run_dir", help="run directory (or its metrics.jsonl)")
    p.add_argument("-o", "--output", help="PNG path (default: RUN_DIR/loss.png)")
    p.add_argument("--log-y", action="store_true", help="logarithmic loss axis")
    p.set_defaults(func=cmd_plot)


def check_records(file: Path, records: list[dict], keys: tuple[str, ...]) -> None:
    """Every record holds a number under each of ``keys``; else one line naming the record."""
    for index, record in enumerate(records):
        for key in keys:
            value = record.get(key)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                problem = "missing" if key not in record else f"not a number ({value!r})"
                raise DataError(f"{file}: record {index + 1} (step {record.get('step', '?')}): {key!r} {problem}")


def cmd_plot(args: argparse.Namespace) -> int:
    from argonne_kit.train.metrics import METRICS_FILE

    source = Path(args.run_dir)
    run_dir = source.parent if source.name == METRICS_FILE else source
    output = Path(args.output) if args.output else run_dir / "loss.png"
    write_loss_plot(run_dir, output, log_y=args.log_y)
    print(f"wrote {output}")
    return 0


def write_loss_plot(run_dir: Path, output: Path, *, log_y: bool = False, up_to_step: int | None = None) -> Path:
    """Training (and validation) loss over steps with the learning rate below, from
    ``run_dir/metrics.jsonl`` (up to ``up_to_step`` when given), as a PNG at ``output``."""
    from argonne_kit.train.metrics import METRICS_FILE, read_metrics

    run_dir = Path(run_dir)
    if not (run_dir / METRICS_FILE).is_file():
        raise DataError(f"{run_dir}: no {METRICS_FILE} (is this a run directory?)")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("plot needs matplotlib: pip install matplotlib (or the project's [dev] extra)") from None
    records = [r for r in read_metrics(run_dir) if isinstance(r, dict)]
    train = [r for r in records if "loss" in r]
    val = [r for r in records if "val_loss" in r]
    check_records(run_dir / METRICS_FILE, train, ("step", "loss", "lr"))
    check_records(run_dir / METRICS_FILE, val, ("step", "val_loss"))
    if up_to_step is not None:
        train = [r for r in train if r["step"] <= up_to_step]
        val = [r for r in val if r["step"] <= up_to_step]
    if not train:
        raise DataError(f"{run_dir / METRICS_FILE}: no training records yet")
    fig, (loss_ax, lr_ax) = plt.subplots(2, 1, sharex=True, figsize=(8, 6), height_ratios=[3, 1])
    loss_ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss", linewidth=1)
    if val:
        loss_ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="val loss")
    if log_y:
        loss_ax.set_yscale("log")
    loss_ax.set_ylabel("loss")
    loss_ax.legend()
    loss_ax.grid(alpha=0.3)
    loss_ax.set_title(run_dir.resolve().name)
    lr_ax.plot([r["step"] for r in train], [r["lr"] for r in train], color="tab:orange", linewidth=1)
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_xlabel("step")
    lr_ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return Path(output)
