"""Helpers of the hardening tests: a hostile pickle payload, the checkpoint recipe body and the
one-error-line check."""

from __future__ import annotations

import os
from pathlib import Path

CHECKPOINT_BODY = "[checkpoint]\ninterval_steps = 4\nkeep_last = 5\n"


class Plant:
    """A pickle payload: unpickling it creates the directory ``marker`` (proof that it ran)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def one_error_line(err: str) -> str:
    """The single ``argonne-kit: error:`` line of ``err`` (asserting there is exactly one and no
    traceback)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("argonne-kit: error:")]
    assert len(lines) == 1, err
    return lines[0]
