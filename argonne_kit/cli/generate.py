"""``generate``: continue a prompt with an exported model (or a run directory's final_model)."""

from __future__ import annotations

import argparse
from pathlib import Path

from argonne_kit.errors import ArgonneError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate text from an exported model",
                       description="Load MODEL_DIR (a final_model/ export, a run directory holding one, or "
                                   "any Hugging Face causal-LM directory) and continue the prompt.")
    p.add_argument("model_dir", help="exported model directory or run directory")
    p.add_argument("--prompt", required=True, help="text to continue")
    p.add_argument("--max-new-tokens", type=int, default=64, help="tokens to generate (default 64)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature; 0 = greedy (default 0.8)")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling threshold (default 0.95)")
    p.add_argument("--seed", type=int, default=444, help="sampling seed (default 444)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the model directory's own Python code to run (off: such a model is refused)")
    p.set_defaults(func=cmd_generate)


def check_sampling_args(args: argparse.Namespace) -> None:
    """``--max-new-tokens`` > 0, ``--temperature`` >= 0 and ``--top-p`` in (0, 1], all finite."""
    import math

    checks = (("--max-new-tokens", args.max_new_tokens, args.max_new_tokens > 0, "> 0"),
              ("--temperature", args.temperature, math.isfinite(args.temperature) and args.temperature >= 0, ">= 0"),
              ("--top-p", args.top_p, math.isfinite(args.top_p) and 0 < args.top_p <= 1, "in (0, 1]"))
    for flag, value, ok, rule in checks:
        if not ok:
            raise ArgonneError(f"command line: {flag}: must be {rule}, got {value}")


def cmd_generate(args: argparse.Namespace) -> int:
    import torch

    from argonne_kit.model import register_auto_classes
    from argonne_kit.recipe.sections import SampleConfig
    from argonne_kit.safe_io import load_pretrained
    from argonne_kit.train.export import FINAL_MODEL_DIR
    from argonne_kit.train.sampling import generate

    register_auto_classes()
    path = Path(args.model_dir)
    if (path / FINAL_MODEL_DIR / "config.json").is_file():
        path = path / FINAL_MODEL_DIR
    if not (path / "config.json").is_file():
        raise ArgonneError(f"{args.model_dir}: no config.json (expected an exported model or a run directory "
                           f"with {FINAL_MODEL_DIR}/)")
    check_sampling_args(args)
    model, tokenizer = load_pretrained(path, trust_remote_code=args.trust_remote_code, dtype=torch.float32)
    cfg = SampleConfig(prompt=args.prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                       top_p=args.top_p)
    print(generate(model, tokenizer, cfg, seed=args.seed))
    return 0
