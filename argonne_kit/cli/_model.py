"""The ``MODEL`` argument shared by every command that loads a model (generate, chat, export,
evaluation…): one help text, one set of flags, one resolver (:mod:`argonne_kit.model_source`)."""

from __future__ import annotations

import argparse

#: What MODEL may be, for the help of every command that takes one.
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
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow a model directory's own Python code (auto_map) to run; off, such a model is refused",
    )


def resolve_model_arg(args: argparse.Namespace):
    """The :class:`~argonne_kit.model_source.ModelSource` named by :func:`add_model_arguments`."""
    import attrs

    from argonne_kit.model_source import resolve_model_source

    source = resolve_model_source(args.model, args.checkpoint, companion=args.config)
    return attrs.evolve(source, trust_remote_code=args.trust_remote_code)
