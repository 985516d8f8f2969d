"""``audit``: check the invariants a release must hold; ``--fix --out`` writes a normalised copy."""

from __future__ import annotations

import argparse
from pathlib import Path

from argonne_kit.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="check a release directory or Hub repo for broken invariants",
        description="Check a release (an exported directory, a run's final_model/, or a Hub repo "
        "id through the local cache): config shapes vs weights, vocabulary vs "
        "tokenizer, attention window vs training, eos/bos/pad across tokenizer, "
        "config, generation config and chat template, tied embeddings stored once, "
        "no legacy alias keys, dtype recorded, auto_map present and the model loading "
        "and generating in a clean process without argonne_kit. One line per problem "
        "and exit status 1, or exit status 0 when clean.",
    )
    p.add_argument("model", metavar="DIR_OR_HUB_ID", help="release directory, run directory or Hub repo id")
    p.add_argument("--fix", action="store_true", help="write a normalised copy to --out (then audit it)")
    p.add_argument("--out", help="where --fix writes the normalised copy")
    p.add_argument(
        "--no-load", action="store_true", help="skip loading the model in a clean process (the slowest check)"
    )
    p.set_defaults(func=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    from argonne_kit.model_source import resolve_model_source
    from argonne_kit.release.audit import audit_release, fix_release

    if args.fix != bool(args.out):
        raise UsageError("--fix and --out go together: --fix --out DIR writes the normalised copy to DIR")
    source = resolve_model_source(args.model)
    if source.model_dir is None or source.kind == "original":
        raise UsageError(
            f"{args.model}: a {source.kind}, not a release directory; export it first "
            f"(argonne-kit export {args.model} --out DIR)"
        )
    directory = source.path
    if args.fix:
        out = Path(args.out)
        if out.exists() and out.resolve() == directory.resolve():
            raise UsageError(f"--out {out}: the copy must not overwrite the release it fixes")
        fix_release(directory, out)
        print(f"wrote the normalised copy {out}")
        directory = out
    problems = audit_release(directory, load_check=not args.no_load)
    for problem in problems:
        print(problem.line(directory))
    if problems:
        return 1
    print(f"{directory}: release audit clean")
    return 0
