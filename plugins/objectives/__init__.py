"""Built-in objectives plugin.

Each objective lives in its own module of this package and exposes
``register_all(register)``, which registers its components; the one hook below calls every
module listed in :data:`MODULES`. Adding an objective = adding a module and listing it here.
"""

from __future__ import annotations

from argonne_kit.registry import hookimpl

from . import clm, cot, dpo, sft

#: Objective modules of this plugin; each has ``register_all(register)``.
MODULES = (clm, sft, dpo, cot)


@hookimpl
def argonne_kit_register_components(register):
    for module in MODULES:
        module.register_all(register)
