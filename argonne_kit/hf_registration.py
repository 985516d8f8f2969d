"""The kit's models become known to transformers' Auto classes as soon as both are imported,
without ``import argonne_kit`` importing transformers (or torch) itself.

``import argonne_kit`` calls :func:`install`: when transformers is already imported the model
package is imported (and registers itself) now; otherwise an import hook waits for transformers
and imports the model package right after it. ``argonne_kit.model`` registers the Auto classes
when it is imported, whichever way that happens.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MODEL_PACKAGE = "argonne_kit.model"


def _import_models() -> None:
    if MODEL_PACKAGE not in sys.modules:  # present = being imported: it registers at its end
        importlib.import_module(MODEL_PACKAGE)


class _AfterTransformers(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the loading of ``transformers`` to import the models after it."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "transformers":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module) -> None:
            load(module)
            _import_models()

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Register the Auto classes now if transformers is loaded, else right after it loads."""
    if "transformers" in sys.modules:
        _import_models()
    elif not any(isinstance(finder, _AfterTransformers) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterTransformers())
