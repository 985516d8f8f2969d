"""The contracts are the whole interface: the core calls on a plugin object only what
``argonne_kit/contracts/`` declares, so it never probes one with getattr/hasattr/inspect."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Names the core gives plugin objects (components, their configs, the plugin modules).
PLUGIN_OBJECTS = re.compile(
    r"\b(strategy|objective|schedule|plugin|backend|component|data|val_data|parallel|"
    r"attention|callback)\b|\.config\b(?<!model\.config)"
)


def _probes(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if "inspect" in names:
                found.append(f"{path.relative_to(root)}:{node.lineno}: imports inspect")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and node.args
        ):
            target = ast.unparse(node.args[0])
            if PLUGIN_OBJECTS.search(target):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {node.func.id}({target}, …)")
    return found


def test_the_core_never_probes_a_plugin_object():
    probes = [hit for path in sorted((ROOT / "argonne_kit").rglob("*.py")) for hit in _probes(path)]
    assert probes == []


def test_the_probe_check_catches_a_probe(tmp_path):
    """The check above can fail: each pattern it must refuse is refused."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import inspect\n"
        "a = getattr(strategy, 'verify', None)\n"
        "b = hasattr(self.objective, 'chat_model')\n"
        "c = getattr(resolved.recipe.parallel.config, 'data_parallel_world', None)\n"
        "d = getattr(tokenizer, 'eos_token_id', None)\n"
    )
    hits = [h.split(": ", 1)[1] for h in _probes(sample, tmp_path)]
    assert hits == [
        "imports inspect",
        "getattr(strategy, …)",
        "hasattr(self.objective, …)",
        "getattr(resolved.recipe.parallel.config, …)",
    ]
