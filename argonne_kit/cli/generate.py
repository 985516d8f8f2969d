"""``generate``: continue a prompt with a model from anywhere (see :mod:`argonne_kit.model_source`)."""

from __future__ import annotations

import argparse

from argonne_kit.errors import ArgonneError

#: Help shared by every command that takes a model (generate, chat, export, audit…).
MODEL_HELP = (
    "a Hugging Face Hub repo id (org/name, through the local cache), an exported model directory, "
    "a run directory (its final_model/, or --checkpoint), one of the kit's checkpoints, or an "
    "original checkpoint_step_N.pt (with --config)"
)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """``MODEL`` plus ``--checkpoint`` and ``--config``: the arguments of :func:`resolve_model_arg`."""
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument(
        "--checkpoint",
        metavar="latest|N",
        help="with a run directory: its newest verified checkpoint, or the one of global step N",
    )
    p.add_argument(
        "--config",
        metavar="MODEL_DIR_OR_HUB_ID",
        help="with an original .pt: the model whose config.json and tokenizer to load it with "
        "(default: the .pt's own directory, when it holds a config.json)",
    )


def resolve_model_arg(args: argparse.Namespace):
    """The :class:`~argonne_kit.model_source.ModelSource` named by :func:`add_model_arguments`."""
    from argonne_kit.model_source import resolve_model_source

    return resolve_model_source(args.model, args.checkpoint, companion=args.config)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="generate text from a model",
        description="Load MODEL and continue the prompt. MODEL is " + MODEL_HELP + ".",
    )
    add_model_arguments(p)
    p.add_argument("--prompt", required=True, help="text to continue")
    p.add_argument("--max-new-tokens", type=int, default=64, help="tokens to generate (default 64)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature; 0 = greedy (default 0.8)")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling threshold (default 0.95)")
    p.add_argument("--seed", type=int, default=444, help="sampling seed (default 444)")
    p.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    from argonne_kit.recipe.sections import SampleConfig
    from argonne_kit.train.sampling import generate

    if args.max_new_tokens <= 0:
        raise ArgonneError("--max-new-tokens must be > 0")
    source = resolve_model_arg(args)
    model = source.load_model()
    tokenizer = source.load_tokenizer()
    cfg = SampleConfig(
        prompt=args.prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p
    )
    print(generate(model, tokenizer, cfg, seed=args.seed))
    return 0
