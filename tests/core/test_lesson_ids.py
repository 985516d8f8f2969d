"""Every lesson ID the repository cites (``D-n`` for defects of the original, ``Pn`` for library
pitfalls) is defined in docs/lessons.md, so a citation always leads somewhere in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CITED_D = re.compile(r"\bD-(\d+)[a-z]?\b")
CITED_P = re.compile(r"\((P\d+)\)|\b(P\d+):")
SOURCES = ("argonne_kit", "plugins", "tests", "recipes", "docs", "benchmarks", "examples", "README.md")


def _files():
    for name in SOURCES:
        path = ROOT / name
        candidates = [path] if path.is_file() else path.rglob("*")
        for file in candidates:
            if file.suffix in {".py", ".md", ".toml", ".sh"} and "build" not in file.parts:
                yield file


def test_every_cited_lesson_is_defined():
    lessons = (ROOT / "docs" / "lessons.md").read_text()
    defined = set(re.findall(r"\*\*(D-\d+[a-z]?|P\d+) —", lessons))
    defined |= {re.sub(r"[a-z]$", "", d) for d in defined}
    missing = {}
    for file in _files():
        text = file.read_text(errors="replace")
        cited = {f"D-{m}" for m in CITED_D.findall(text)}
        cited |= {a or b for a, b in CITED_P.findall(text)}
        for ident in cited - defined:
            missing.setdefault(ident, file.relative_to(ROOT).as_posix())
    assert missing == {}
    assert {"D-4", "P4"} <= defined  # the definitions are still found
