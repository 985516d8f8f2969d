"""Resolving a recipe (``argonne-kit resolve``/``diff``/``plan``, the recipe layer) imports no torch: the
plugins register torch-free config classes and factories that import their implementation only
when a component is built. Each check runs in a fresh interpreter, so nothing imported by another
test counts, and names the module that imported torch first when one does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECIPES = [str(ROOT / "recipes" / f"{name}.toml") for name in ("quickstart", "quickstart_sft", "quickstart_dpo")]

#: Records the module whose ``import torch`` ran first (``first_importer``), runs ``setup``, then
#: resolves the recipes given on the command line.
PROBE = """
import json, sys

class TorchImportSpy:
    first_importer = None

    def find_spec(self, name, path=None, target=None):
        if name == "torch" and TorchImportSpy.first_importer is None:
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename.startswith("<frozen"):
                frame = frame.f_back
            TorchImportSpy.first_importer = frame.f_globals.get("__name__") if frame else "?"
        return None

sys.meta_path.insert(0, TorchImportSpy())
{setup}
from argonne_kit.recipe import resolve_recipe

for recipe in sys.argv[1:]:
    resolve_recipe(recipe)
print(json.dumps({{"torch": "torch" in sys.modules, "first_importer": TorchImportSpy.first_importer}}))
"""


def resolve_in_fresh_process(setup: str) -> dict:
    code = PROBE.format(setup=setup)
    done = subprocess.run([sys.executable, "-c", code, *RECIPES], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_resolving_the_quickstart_recipes_imports_no_torch():
    result = resolve_in_fresh_process("")
    assert not result["torch"], f"torch imported first by {result['first_importer']}"


def test_the_probe_names_the_module_that_imports_torch():
    result = resolve_in_fresh_process("import argonne_kit.contracts.data")
    assert result == {"torch": True, "first_importer": "argonne_kit.contracts.data"}


@pytest.mark.parametrize("command", [["resolve", RECIPES[0]], ["diff", RECIPES[0], RECIPES[1]], ["--help"]])
def test_recipe_commands_and_help_import_no_torch(command):
    code = (
        "import sys\nfrom argonne_kit.cli import main\n"
        f"try:\n    main({command!r})\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False False"
