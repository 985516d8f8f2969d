"""Errors that argonne_kit reports to a user without a traceback.

The class says what the user has to fix, by one rule applied everywhere (core and plugins):

- :class:`RecipeError` — a recipe value (or a ``KEY=VALUE`` override of one): out of range, two
  values that contradict each other, or a value this machine, model or world size cannot honour
  (a tensor-parallel degree that does not divide the heads is a recipe error wherever it is found:
  at resolve time or when the model is sharded). The message starts with the dotted path.
- :class:`PluginError` — the plugin machinery: a plugin that cannot be loaded or registered, a
  component name nobody registered, a component used against its contract.
- :class:`DataError` — input data: a file, row, shard, manifest, prompt file or tokenizer that is
  missing, unreadable or malformed. The message names the file and, where it applies, the row.
- :class:`CheckpointError` — a checkpoint, run directory or saved model that cannot be written,
  verified or loaded.
- :class:`UsageError` — a command-line argument of a CLI command (not a recipe key): missing,
  malformed, out of range or contradicting another; or an optional dependency the command needs
  is not installed. The message starts with the flag.
- :class:`~argonne_kit.contracts.attention.AttentionUnsupported` — an attention backend that cannot
  run the requested spec on this runtime.
- :class:`ArgonneError` itself — only for a failure outside the kit that the user must act on (the
  Hub refused a push, ``sbatch`` failed); ``push`` adds a subclass for a release that fails its
  audit (exit status 1).

Attrs validators on config fields raise ``ValueError``; the recipe loader turns it into a
:class:`RecipeError` naming the file and the dotted path. Anything else that escapes is a bug.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ArgonneError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits with status 2."""

    exit_code = 2


class RecipeError(ArgonneError):
    """A recipe that cannot be read, structured or resolved. The message names the recipe file
    and the dotted path of the offending key."""


class PluginError(ArgonneError):
    """A plugin that cannot be loaded or registered, a component name nobody registered, or a
    component used against its contract."""


class DataError(ArgonneError):
    """Bad input data: the message names the file and, where it applies, the row."""


class CheckpointError(ArgonneError):
    """A checkpoint that cannot be written, verified or loaded."""


class UsageError(ArgonneError):
    """A command-line argument that is missing, malformed or contradicts another, or an optional
    dependency the command needs; the message starts with the flag."""


def suggest(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest candidates, or an empty string."""
    candidates = list(candidates)
    matches = difflib.get_close_matches(word, candidates, n=2, cutoff=0.6)
    if not matches:
        lowered = word.lower()
        matches = [c for c in candidates if lowered.startswith(c.lower()) or c.lower().startswith(lowered)][:2]
    if not matches:
        return ""
    return "; did you mean " + " or ".join(repr(m) for m in matches) + "?"
