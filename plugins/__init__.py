"""argonne_kit's built-in plugins (installed as ``argonne_plugins``).

Each subpackage is one plugin, advertised in the ``argonne_kit`` entry-point group of the
``argonne-kit`` distribution exactly as a third-party plugin would be. Plugins depend only on the
core contracts (``argonne_kit.contracts``, ``argonne_kit.registry``), never on each other.
"""
