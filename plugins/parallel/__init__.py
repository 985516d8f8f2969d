"""Built-in parallel strategies: ``single``, ``ddp``, ``fsdp`` (FSDP2) and ``tp`` (DTensor tensor
parallel, combined with FSDP over a 2-D ``dp × tp`` mesh when the world is larger than the TP
degree).

Everything is applied from outside the model (torchtitan's ``parallelize.py`` is the model):
the model has no distributed code. See :mod:`.base` for the fixed wrapping order and
:mod:`.checkpoint` for the self-describing checkpoint layout shared by all strategies.
"""

from __future__ import annotations

from argonne_kit.registry import hookimpl

from .ddp import DDPConfig, DDPStrategy
from .fsdp import FSDPConfig, FSDPStrategy
from .single import SingleConfig, SingleStrategy
from .tp import TPConfig, TPStrategy


@hookimpl
def argonne_kit_register_components(register):
    register("parallel", "single", SingleStrategy, SingleConfig)
    register("parallel", "ddp", DDPStrategy, DDPConfig)
    register("parallel", "fsdp", FSDPStrategy, FSDPConfig)
    register("parallel", "tp", TPStrategy, TPConfig)
