"""Errors that argonne_kit reports to a user without a traceback."""

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
    """A plugin that cannot be loaded or registered, or a component name nobody registered."""


class DataError(ArgonneError):
    """Bad input data: the message names the file and, where it applies, the row."""


class CheckpointError(ArgonneError):
    """A checkpoint that cannot be written, verified or loaded."""


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
