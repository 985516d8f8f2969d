"""``convert-checkpoint``: rewrite a trusted pickle-based ``.pt`` into a file the kit loads safely.

The kit loads ``.pt`` files with ``weights_only=True`` and a small allow-list, so a planted
pickle never runs. An original training checkpoint that stored other Python objects (a config
object, numpy scalars, a scheduler) is therefore refused. If you trust where it came from, this
command unpickles it once — deliberately, behind ``--trust-pickle`` — and writes tensors and plain
values only (numpy arrays become tensors, numpy scalars plain numbers; any other object is dropped
and listed).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from argonne_kit.errors import CheckpointError, UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert-checkpoint",
        help="rewrite a trusted pickle .pt into a safely loadable one",
        description="Unpickle SRC (this runs whatever code the pickle holds: only for files you "
        "trust) and write its tensors and plain values to DST, which init.from and "
        "the model loaders then read with weights_only=True.",
    )
    p.add_argument("src", help="the .pt/.pth/.bin file to convert")
    p.add_argument("dst", help="the new file (must not exist)")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="required: confirms SRC comes from a trusted source (unpickling can run code)",
    )
    p.set_defaults(func=cmd_convert_checkpoint)


def cmd_convert_checkpoint(args: argparse.Namespace) -> int:
    import torch

    from argonne_kit.safe_io import atomic_write

    src, dst = Path(args.src), Path(args.dst)
    if not args.trust_pickle:
        raise UsageError(
            f"{src}: converting unpickles the file, which can run arbitrary code; pass "
            f"--trust-pickle if it comes from a source you trust"
        )
    if not src.is_file():
        raise CheckpointError(f"{src}: not found")
    if dst.exists():
        raise UsageError(f"{dst}: already exists; choose a new destination")
    try:
        blob = torch.load(src, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"{src}: unreadable: {exc}") from None
    dropped: list[str] = []
    plain = to_plain(blob, "", dropped)
    if plain is _DROP:
        raise CheckpointError(f"{src}: holds no tensors or plain values to keep ({dropped[0]})")
    with atomic_write(dst) as handle:
        torch.save(plain, handle)
    for where in dropped:
        print(f"convert-checkpoint: dropped {where} (not a tensor or plain value)")
    print(f"convert-checkpoint: wrote {dst}")
    return 0


def to_plain(obj: Any, where: str, dropped: list[str]) -> Any:
    """``obj`` reduced to tensors, containers and plain scalars; the paths of dropped objects are
    appended to ``dropped`` (their entry is left out)."""
    import numpy as np
    import torch

    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, (str, int)):
                dropped.append(f"{where}[{key!r}]")
                continue
            item = to_plain(value, f"{where}.{key}" if where else str(key), dropped)
            if item is not _DROP:
                out[key] = item
        return out
    if isinstance(obj, (list, tuple)):
        items = [to_plain(v, f"{where}[{i}]", dropped) for i, v in enumerate(obj)]
        items = [v for v in items if v is not _DROP]
        return type(obj)(items) if isinstance(obj, list) else tuple(items)
    dropped.append(f"{where or 'the file'} ({type(obj).__module__}.{type(obj).__qualname__})")
    return _DROP


_DROP = object()
