"""argonne_kit: pretraining and post-training of decoder-only LMs as a small core plus plugins.

Importing the package registers the Argonne model classes with ``transformers``' Auto classes.
"""

__version__ = "0.1.0"

from argonne_kit.model import register_auto_classes as _register_auto_classes  # noqa: E402

_register_auto_classes()
