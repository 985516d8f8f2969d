"""``push``: audit a release, then upload it to the Hugging Face Hub."""

from __future__ import annotations

import argparse
from pathlib import Path

from argonne_kit.errors import ArgonneError, UsageError


class AuditFailed(ArgonneError):
    """The release fails the audit and ``--force`` was not given."""

    exit_code = 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "push",
        help="audit a release and upload it to the Hugging Face Hub",
        description="Run `argonne-kit audit` on DIR, refuse a failing release unless --force, "
        "then create REPO_ID (kept when it exists) and upload every file of DIR in one "
        "commit (several for folders over 20 GiB). The token comes from "
        "huggingface_hub's usual places (HF_TOKEN, `hf auth login`); HF_ENDPOINT "
        "selects another Hub.",
    )
    p.add_argument("directory", metavar="DIR", help="release directory (argonne-kit export) or a run directory")
    p.add_argument("repo_id", metavar="REPO_ID", help="org/name on the Hub")
    p.add_argument("--revision", help="branch to upload to (created from main when missing)")
    p.add_argument(
        "--private",
        action="store_true",
        help="create the repository private (an existing repository keeps its visibility)",
    )
    p.add_argument("--commit-message", help="commit message (default: 'Upload DIR with argonne-kit')")
    p.add_argument("--dry-run", action="store_true", help="audit and list every file and size; upload nothing")
    p.add_argument("--force", action="store_true", help="upload even when the audit finds problems")
    p.set_defaults(func=cmd_push)


def cmd_push(args: argparse.Namespace) -> int:
    from argonne_kit.model_source import HUB_REPO_ID, resolve_model_source
    from argonne_kit.release.audit import audit_release
    from argonne_kit.release.hub import commit_batches, push_release, release_files

    if not HUB_REPO_ID.match(args.repo_id):
        raise UsageError(f"REPO_ID {args.repo_id!r}: expected org/name")
    source = resolve_model_source(args.directory)
    if source.kind not in ("export", "run"):
        raise UsageError(
            f"{args.directory}: a {source.kind}, not a release directory; export it first "
            f"(argonne-kit export {args.directory} --out DIR)"
        )
    directory = source.path
    problems = audit_release(directory)
    for problem in problems:
        print(problem.line(directory))
    if problems and not args.force:
        raise AuditFailed(
            f"{directory}: the release fails the audit ({len(problems)} problem(s) above); "
            f"fix it (argonne-kit audit --fix --out DIR) or pass --force"
        )
    files = release_files(directory)
    if args.dry_run:
        for name, size in files:
            print(f"{size:>14,}  {name}")
        total = sum(size for _n, size in files)
        commits = len(commit_batches(files))
        print(
            f"{total:>14,}  total: {len(files)} files in {commits} commit(s) to {args.repo_id}"
            + (f"@{args.revision}" if args.revision else "")
            + " (dry run: nothing uploaded)"
        )
        return 0
    try:
        urls = push_release(
            Path(directory),
            args.repo_id,
            revision=args.revision,
            private=args.private,
            commit_message=args.commit_message,
        )
    except Exception as exc:  # Hub refusals and network failures come in many types; the message names it
        reason = " ".join(str(exc).split())
        raise ArgonneError(f"push {args.repo_id}: {type(exc).__name__}: {reason}") from None
    for url in urls:
        print(f"committed {url}")
    return 0
