"""argonne_kit: pretraining and post-training of decoder-only LMs as a small core plus plugins.

Importing the package makes the Argonne model classes known to ``transformers``' Auto classes —
at once if transformers is loaded, else as soon as it is (see :mod:`argonne_kit.hf_registration`):
``import argonne_kit`` itself imports neither transformers nor torch.
"""

__version__ = "0.1.0"

from argonne_kit.hf_registration import install as _install_hf_registration  # noqa: E402

_install_hf_registration()
