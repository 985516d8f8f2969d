"""argonne_kit: pretraining and post-training of decoder-only LMs as a small core plus plugins.

Importing the package makes the Argonne model classes known to ``transformers``' Auto classes —
at once if transformers is loaded, else as soon as it is (see :mod:`argonne_kit.hf_registration`):
``import argonne_kit`` itself imports neither transformers nor torch.
"""

__version__ = "0.1.0"

import logging as _logging

# transformers imports torchao (the optional ``fp8`` extra) at startup when it is installed; on a
# host without CUDA torchao then logs one warning per GPU-only kernel library it cannot load, and
# torch one deprecation warning per enum torchao registers — noise on every command.
for _name in ("torchao", "torch.utils._pytree"):
    _logging.getLogger(_name).setLevel(_logging.ERROR)

from argonne_kit.hf_registration import install as _install_hf_registration  # noqa: E402

_install_hf_registration()
