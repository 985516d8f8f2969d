"""The error-class rule of argonne_kit/errors.py holds: the bare base class is raised only for
failures outside the kit, every command-line mistake is a UsageError."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from argonne_kit.errors import CheckpointError, UsageError
from argonne_kit.safe_io import StorageError

ROOT = Path(__file__).resolve().parents[2]
#: where a bare ArgonneError is the rule's choice: the Hub or sbatch failed
OUTSIDE_FAILURES = {"argonne_kit/cli/push.py", "argonne_kit/cli/slurm.py"}


def _raised(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name):
            out.append((node.lineno, node.exc.func.id))
    return out


def test_the_bare_base_class_is_raised_only_for_failures_outside_the_kit():
    offenders = []
    for path in sorted([*(ROOT / "argonne_kit").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        offenders += [f"{rel}:{line}" for line, name in _raised(path) if name == "ArgonneError"]
    assert [o for o in offenders if o.split(":")[0] not in OUTSIDE_FAILURES] == []
    assert offenders, "the scan found no raise at all: it no longer reads the sources"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["plan", "RECIPE", "--mfu", "2"], "--mfu: expected a fraction in (0, 1]"),
        (["generate", "RUN", "--prompt", "x", "--max-new-tokens", "0"], "--max-new-tokens: must be > 0, got 0"),
        (["preprocess", "--output", "OUT"], "--input and --tokenizer are required"),
    ],
)
def test_command_line_mistakes_are_usage_errors(argv, message, tmp_path):
    from argonne_kit.cli import build_parser

    stand_in = {"RECIPE": str(ROOT / "recipes" / "quickstart.toml"), "RUN": str(tmp_path), "OUT": str(tmp_path / "o")}
    args = build_parser().parse_args([stand_in.get(a, a) for a in argv])
    with pytest.raises(UsageError, match=re.escape(message)):
        args.func(args)


def test_a_write_failure_is_a_checkpoint_error():
    assert issubclass(StorageError, CheckpointError) and not issubclass(UsageError, CheckpointError)
