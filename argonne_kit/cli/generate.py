"""``generate``: continue a prompt with a model from anywhere (see :mod:`argonne_kit.model_source`)."""

from __future__ import annotations

import argparse

from argonne_kit.cli._model import MODEL_HELP, add_model_arguments, resolve_model_arg
from argonne_kit.errors import UsageError


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


def check_sampling_args(args: argparse.Namespace) -> None:
    """``--max-new-tokens`` > 0, ``--temperature`` >= 0 and ``--top-p`` in (0, 1], all finite."""
    import math

    checks = (
        ("--max-new-tokens", args.max_new_tokens, args.max_new_tokens > 0, "> 0"),
        ("--temperature", args.temperature, math.isfinite(args.temperature) and args.temperature >= 0, ">= 0"),
        ("--top-p", args.top_p, math.isfinite(args.top_p) and 0 < args.top_p <= 1, "in (0, 1]"),
    )
    for flag, value, ok, rule in checks:
        if not ok:
            raise UsageError(f"command line: {flag}: must be {rule}, got {value}")


def cmd_generate(args: argparse.Namespace) -> int:
    from argonne_kit.recipe.sections import SampleConfig
    from argonne_kit.train.sampling import generate

    check_sampling_args(args)
    source = resolve_model_arg(args)
    model = source.load_model()
    tokenizer = source.load_tokenizer()
    cfg = SampleConfig(
        prompt=args.prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p
    )
    print(generate(model, tokenizer, cfg, seed=args.seed))
    return 0
