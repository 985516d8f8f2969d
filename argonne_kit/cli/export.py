"""``export``: write a release directory (the same code as a run's ``final_model/``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from argonne_kit.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from argonne_kit.cli._model import MODEL_HELP, add_model_arguments
    from argonne_kit.release.formats import DEFAULT_MAX_SHARD_SIZE, EXPORT_DTYPE_NAMES

    p = sub.add_parser(
        "export",
        help="write a publishable Hugging Face directory from a run or checkpoint",
        description="Write a release directory from MODEL (" + MODEL_HELP + "): sharded "
        "safetensors with index, config with the dtype recorded, generation config, "
        "tokenizer and chat template, the resolved recipe and a model card README.md "
        "with the architecture, the training (from the recipe and metrics.jsonl) and "
        "the loss plot. A run's final_model/ is written by the same code.",
    )
    add_model_arguments(p)
    p.add_argument("--out", required=True, help="directory to write (replaced atomically when it is an export)")
    p.add_argument(
        "--dtype",
        choices=sorted(EXPORT_DTYPE_NAMES),
        default="bf16",
        help="dtype of the stored weights (default bf16, as the releases)",
    )
    p.add_argument(
        "--max-shard-size",
        default=DEFAULT_MAX_SHARD_SIZE,
        help=f"largest safetensors shard, e.g. 5GB or 200KB (default {DEFAULT_MAX_SHARD_SIZE})",
    )
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from transformers.utils.hub import convert_file_size_to_int

    from argonne_kit.cli._model import resolve_model_arg
    from argonne_kit.train.export import export_model, release_eos_token_id

    try:
        shard = convert_file_size_to_int(args.max_shard_size)
    except ValueError:
        raise UsageError(f"--max-shard-size {args.max_shard_size!r}: expected a size like 5GB or 200KB") from None
    out = Path(args.out)
    source = resolve_model_arg(args)
    earlier_export = (out / "config.json").is_file()
    if out.exists() and (out.resolve() == source.path.resolve() or (not earlier_export and any(out.iterdir()))):
        raise UsageError(f"--out {out}: exists and is not an earlier export (or is the source); choose another")
    model, tokenizer = source.load_model(), source.load_tokenizer()
    recipe_path = source.resolved_recipe_path()
    recipe_toml = recipe_path.read_text() if recipe_path is not None else None
    eos = model.config.eos_token_id if source.model_dir is not None else None  # a release keeps its own eos
    if eos is None and recipe_path is not None:
        eos = release_eos_token_id(source.resolved_recipe(), tokenizer)
    step = None
    if source.kind == "checkpoint":  # the card describes the training up to this checkpoint only
        from argonne_kit.train.checkpoint import read_manifest

        step = read_manifest(source.path)["step"]
    export_model(
        model,
        tokenizer,
        out,
        recipe_toml=recipe_toml,
        eos_token_id=eos,
        dtype=args.dtype,
        max_shard_size=shard,
        run_dir=source.run_dir,
        up_to_step=step,
    )
    files = sorted(p.name for p in out.iterdir())
    print(f"exported {source.describe()} → {out} ({args.dtype}): {', '.join(files)}")
    return 0
