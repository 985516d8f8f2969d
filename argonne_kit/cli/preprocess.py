"""``argonne-kit preprocess``: a directory of parquet text → token shards + manifest."""

from __future__ import annotations

import argparse

from argonne_kit.data.preprocess import DEFAULT_SHARD_TOKENS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "preprocess",
        help="tokenize parquet text into token shards",
        description="Tokenize every *.parquet file under --input (FineWeb schema: one text column) into "
        "uint32 token shards plus manifest.json under --output. Each document is followed by EOS "
        "(no BOS unless --bos). The output is identical for any --workers; re-running skips input "
        "files already done; empty/None rows are counted and reported.",
    )
    p.add_argument("--input", help="directory of parquet files (searched recursively) or one parquet file")
    p.add_argument(
        "--tokenizer",
        help="tokenizer directory, tokenizer.json file or Hugging Face Hub id "
        "(required unless --quickstart, which uses the embedded tokenizer)",
    )
    p.add_argument("--output", required=True, help="output directory for shards, manifest.json and tokenizer/")
    p.add_argument(
        "--quickstart",
        action="store_true",
        help="use the embedded quickstart corpus (and tokenizer, unless --tokenizer is given); "
        "generated offline on first use",
    )
    p.add_argument(
        "--split",
        choices=("train", "validation"),
        default="train",
        help="with --quickstart: which split of the embedded corpus (default train)",
    )
    p.add_argument("--text-column", default="text", help="name of the text column (default: text)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes, one input file each (default 1: one process whose tokenizer uses every core)",
    )
    p.add_argument(
        "--shard-tokens",
        type=int,
        default=DEFAULT_SHARD_TOKENS,
        help=f"start a new shard after this many tokens (whole documents; default {DEFAULT_SHARD_TOKENS:,})",
    )
    eos = p.add_mutually_exclusive_group()
    eos.add_argument(
        "--append-eos",
        dest="append_eos",
        action="store_true",
        default=True,
        help="follow each document with the tokenizer's EOS token (default)",
    )
    eos.add_argument("--no-eos", dest="append_eos", action="store_false", help="do not append EOS")
    p.add_argument("--bos", action="store_true", help="put the tokenizer's BOS token before each document")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_preprocess)


def cmd_preprocess(args: argparse.Namespace) -> int:
    from argonne_kit.data.preprocess import preprocess
    from argonne_kit.errors import UsageError

    input_dir, tokenizer = args.input, args.tokenizer
    if args.quickstart:
        from argonne_kit.data.embedded import ensure_quickstart_assets

        assets = ensure_quickstart_assets()
        input_dir = input_dir or (assets.train_parquet_dir if args.split == "train" else assets.validation_parquet_dir)
    elif input_dir is None or tokenizer is None:
        raise UsageError("preprocess: --input and --tokenizer are required (or --quickstart for the embedded corpus)")
    if args.shard_tokens <= 0:
        raise UsageError("preprocess: --shard-tokens must be > 0")
    preprocess(
        input_dir,
        tokenizer,
        args.output,
        text_column=args.text_column,
        workers=args.workers,
        shard_tokens=args.shard_tokens,
        append_eos=args.append_eos,
        prepend_bos=args.bos,
        progress=not args.no_progress,
    )
    return 0
