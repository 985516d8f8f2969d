"""``argonne-kit`` — the command line.

Each subcommand lives in its own module of this package with ``add_parser(subparsers)``
(which sets ``func``); modules are discovered, so adding a command is adding a file. User mistakes (:class:`~argonne_kit.errors.ArgonneError`) print one line,
``argonne-kit: error: …``, and exit with status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from argonne_kit.errors import ArgonneError

#: Listed first in ``--help``; the other command modules follow in name order.
FIRST = ("recipes", "plugins")


def command_modules() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    ordered = [n for n in FIRST if n in names] + sorted(n for n in names if n not in FIRST)
    return [f"{__name__}.{n}" for n in ordered]


def build_parser() -> argparse.ArgumentParser:
    from argonne_kit import __version__

    parser = argparse.ArgumentParser(
        prog="argonne-kit",
        description="Pretrain and post-train decoder-only language models from typed TOML recipes.",
    )
    parser.add_argument("--version", action="version", version=f"argonne-kit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in command_modules():
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except ArgonneError as exc:
        print(f"argonne-kit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("argonne-kit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` & co.: stop quietly
        sys.stderr.close()
        return 0
    return int(code or 0)
