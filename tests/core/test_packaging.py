"""The built wheel ships the built-in plugins as `argonne_plugins` (never a bare `plugins`) and
they load from the installed wheel through the entry-point group."""

import ast
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_directory_is_listed_in_pyproject():
    """package-dir maps plugins/ → argonne_plugins, so packages are listed by hand; keep them complete."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for top, name in (("argonne_kit", "argonne_kit"), ("plugins", "argonne_plugins")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([name, *rel.parts]))
    assert found == listed


def _kit_imports(path: Path) -> list[tuple[int, str]]:
    """Every ``argonne_kit`` module a file imports, anywhere in it (functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
            if node.module == "argonne_kit":  # ``from argonne_kit import errors``
                modules = [f"argonne_kit.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        else:
            continue
        found += [(node.lineno, m) for m in modules if m == "argonne_kit" or m.startswith("argonne_kit.")]
    return found


def _plugin_files():
    yield from (ROOT / "plugins").rglob("*.py")
    yield from (ROOT / "examples").rglob("*.py")
    yield from (ROOT / "tests" / "core" / "contract_plugin").rglob("*.py")


def test_plugins_import_only_the_core_contracts():
    """Dependency rule: plugins import the kit's public API only (the contracts plus the documented
    helpers of ``argonne_kit.contracts.PUBLIC_API``), never another plugin kind."""
    from argonne_kit.contracts import PUBLIC_API

    outside = []
    for path in _plugin_files():
        outside += [
            f"{path.relative_to(ROOT)}:{line}: {module}"
            for line, module in _kit_imports(path)
            if module not in PUBLIC_API
        ]
        if path.is_relative_to(ROOT / "plugins"):
            kind = path.relative_to(ROOT / "plugins").parts[0]
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    module = node.module
                    if module.startswith("argonne_plugins."):
                        assert module.split(".")[1] == kind, f"{path}: imports another plugin kind ({module})"
                    assert not module.startswith("plugins"), f"{path}: imports the bare 'plugins' package"
    assert outside == []


def test_the_public_api_check_sees_internal_imports(tmp_path):
    sample = tmp_path / "p.py"
    sample.write_text(
        "from argonne_kit.train.trainer import Trainer\nimport argonne_kit.model.build\n"
        "def f():\n    from argonne_kit import probe\n    from argonne_kit.errors import DataError\n"
    )
    assert _kit_imports(sample) == [
        (1, "argonne_kit.train.trainer"),
        (2, "argonne_kit.model.build"),
        (4, "argonne_kit.probe"),
        (5, "argonne_kit.errors"),
    ]


def test_core_never_imports_a_plugin():
    for path in (ROOT / "argonne_kit").rglob("*.py"):
        text = path.read_text()
        assert "argonne_plugins" not in text.replace("``argonne_plugins", ""), f"{path} names argonne_plugins"


@pytest.mark.slow
def test_built_wheel_contains_and_loads_the_plugins(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("argonne_kit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for kind in ("attention", "objectives", "parallel", "data", "schedules"):
        assert f"argonne_plugins/{kind}/__init__.py" in names
    assert not any(n.startswith("plugins/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "[argonne_kit]" in zipfile.ZipFile(wheel).read(entry_points).decode()

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    probe = (
        "import sys, json; sys.path.insert(0, sys.argv[1]);"
        "import argonne_plugins, argonne_kit;"
        "from argonne_kit.registry import Registry; r = Registry(); r.load_entry_points(['argonne-kit']);"
        "print(json.dumps({'plugins_file': argonne_plugins.__file__, 'kit_file': argonne_kit.__file__,"
        " 'schedules': r.names('schedule')}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(site)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["plugins_file"].startswith(str(site)) and data["kit_file"].startswith(str(site))
    assert data["schedules"] == ["constant", "cosine", "wsd"]
