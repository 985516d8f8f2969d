"""Importing the package, or the recipe schema alone (what a tool reading recipes needs), loads
neither torch nor transformers: both cost seconds and the CLI's ``--help`` must stay instant."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["argonne_kit", "argonne_kit.recipe.schema", "argonne_kit.recipe.sections"])
def test_import_loads_neither_torch_nor_transformers(module):
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stdout
