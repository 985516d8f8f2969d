"""Built-in parallel strategies: ``single``, ``ddp``, ``fsdp`` (FSDP2) and ``tp`` (DTensor tensor
parallel, combined with FSDP over a 2-D ``dp × tp`` mesh when the world is larger than the TP
degree).

Everything is applied from outside the model (torchtitan's ``parallelize.py`` is the model): the
model has no distributed code. See :mod:`.base` for the fixed wrapping order and :mod:`.checkpoint`
for the self-describing checkpoint layout shared by all strategies.

Registering imports only the torch-free :mod:`.configs`: each factory (``lazy_factory``) imports its
strategy's module (and with it torch) when it is called, so resolving a recipe never loads torch.
"""

from __future__ import annotations

from argonne_kit.registry import hookimpl, lazy_factory

from .configs import DDPConfig, FSDPConfig, SingleConfig, TPConfig


@hookimpl
def argonne_kit_register_components(register):
    register("parallel", "single", lazy_factory(f"{__name__}.single:SingleStrategy"), SingleConfig)
    register("parallel", "ddp", lazy_factory(f"{__name__}.ddp:DDPStrategy"), DDPConfig)
    register("parallel", "fsdp", lazy_factory(f"{__name__}.fsdp:FSDPStrategy"), FSDPConfig)
    register("parallel", "tp", lazy_factory(f"{__name__}.tp:TPStrategy"), TPConfig)
