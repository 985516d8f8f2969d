"""Hook specifications of argonne_kit (pluggy, project name ``argonne_kit``).

Only the signatures matter; the bodies are docstrings. A plugin is any importable object
(usually a module) with functions marked ``@argonne_kit.registry.hookimpl`` whose names match the specs
below, advertised in the ``argonne_kit`` entry-point group of its distribution::

    [project.entry-points.argonne_kit]
    my_objective = "my_package.plugin"
"""

import pluggy

PROJECT = "argonne_kit"

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def argonne_kit_register_components(register):
    """Register the components this plugin provides.

    Call ``register(kind, name, factory, config_cls)`` once per component:

    - ``kind``: one of :data:`argonne_kit.registry.KINDS` (``attention``, ``objective``,
      ``parallel``, ``data``, ``schedule``).
    - ``name``: the value a recipe writes as ``kind = "<name>"`` in that section.
    - ``factory``: a callable that builds the component from its config (see the contract of
      each kind in ``argonne_kit.contracts`` and ``docs/plugins.md``).
    - ``config_cls``: an ``attrs`` class with a docstring for every field, subclassing
      :class:`argonne_kit.contracts.config.ComponentConfig` (``ParallelConfig`` for ``parallel``);
      the recipe section (minus ``kind``) is structured into it, unknown keys and wrong types
      being errors.
    """
