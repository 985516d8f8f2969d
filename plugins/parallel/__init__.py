"""Built-in parallel strategies: ``single``, ``ddp``, ``fsdp`` (FSDP2) and ``tp`` (DTensor tensor
parallel, combined with FSDP over a 2-D ``dp × tp`` mesh when the world is larger than the TP
degree).

Everything is applied from outside the model (torchtitan's ``parallelize.py`` is the model):
the model has no distributed code. See :mod:`.base` for the fixed wrapping order and
:mod:`.checkpoint` for the self-describing checkpoint layout shared by all strategies.

Registering imports only the torch-free :mod:`.configs`: each factory below imports its
strategy's module (and with it torch) when it is called, so resolving a recipe never loads torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from argonne_kit.registry import hookimpl

from .configs import DDPConfig, FSDPConfig, SingleConfig, TPConfig

if TYPE_CHECKING:
    from argonne_kit.contracts.parallel import ParallelStrategy


def build_single(config: SingleConfig) -> ParallelStrategy:
    """The ``single`` strategy (:class:`.single.SingleStrategy`)."""
    from .single import SingleStrategy

    return SingleStrategy(config)


def build_ddp(config: DDPConfig) -> ParallelStrategy:
    """The ``ddp`` strategy (:class:`.ddp.DDPStrategy`)."""
    from .ddp import DDPStrategy

    return DDPStrategy(config)


def build_fsdp(config: FSDPConfig) -> ParallelStrategy:
    """The ``fsdp`` strategy (:class:`.fsdp.FSDPStrategy`)."""
    from .fsdp import FSDPStrategy

    return FSDPStrategy(config)


def build_tp(config: TPConfig) -> ParallelStrategy:
    """The ``tp`` strategy (:class:`.tp.TPStrategy`)."""
    from .tp import TPStrategy

    return TPStrategy(config)


@hookimpl
def argonne_kit_register_components(register):
    register("parallel", "single", build_single, SingleConfig)
    register("parallel", "ddp", build_ddp, DDPConfig)
    register("parallel", "fsdp", build_fsdp, FSDPConfig)
    register("parallel", "tp", build_tp, TPConfig)
