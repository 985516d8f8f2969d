"""argonne_kit's built-in plugins (installed as ``argonne_plugins``).

Each subpackage is one plugin, advertised in the ``argonne_kit`` entry-point group of the
``argonne-kit`` distribution exactly as a third-party plugin would be. Plugins import from the kit
only its public API — the modules listed in ``argonne_kit.contracts.PUBLIC_API`` (the contracts,
the registry and the documented helpers; docs/plugins.md §4) — and never another plugin.
"""
