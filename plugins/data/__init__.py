"""Built-in data sources: ``bin_shards``, ``fineweb_parquet``, ``mixture``, ``ultrachat``, ``cot``
and ``preference`` (the DataSource contract in ``argonne_kit.contracts.data``).

Registering imports only the torch-free :mod:`.configs`: each factory below imports its source's
module (and with it torch) when it is called, so resolving a recipe never loads torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from argonne_kit.registry import hookimpl

from .configs import (
    BinShardsConfig,
    ChatConfig,
    CotConfig,
    FineWebParquetConfig,
    MixtureConfig,
    PreferenceConfig,
)

if TYPE_CHECKING:
    from argonne_kit.contracts.data import DataContext, DataSource


def make_bin_shards(config: BinShardsConfig, ctx: DataContext) -> DataSource:
    """The ``bin_shards`` source (:func:`.bin_shards.make_bin_shards`)."""
    from . import bin_shards

    return bin_shards.make_bin_shards(config, ctx)


def make_fineweb_parquet(config: FineWebParquetConfig, ctx: DataContext) -> DataSource:
    """The ``fineweb_parquet`` source (:func:`.fineweb_parquet.make_fineweb_parquet`)."""
    from . import fineweb_parquet

    return fineweb_parquet.make_fineweb_parquet(config, ctx)


def make_mixture(config: MixtureConfig, ctx: DataContext) -> DataSource:
    """The ``mixture`` source (:func:`.mixture.make_mixture`)."""
    from . import mixture

    return mixture.make_mixture(config, ctx)


def make_ultrachat(config: ChatConfig, ctx: DataContext) -> DataSource:
    """The ``ultrachat`` source (:func:`.chat.make_ultrachat`)."""
    from . import chat

    return chat.make_ultrachat(config, ctx)


def make_cot(config: CotConfig, ctx: DataContext) -> DataSource:
    """The ``cot`` source (:func:`.chat.make_cot`)."""
    from . import chat

    return chat.make_cot(config, ctx)


def make_preference(config: PreferenceConfig, ctx: DataContext) -> DataSource:
    """The ``preference`` source (:func:`.chat.make_preference`)."""
    from . import chat

    return chat.make_preference(config, ctx)


@hookimpl
def argonne_kit_register_components(register):
    register("data", "bin_shards", make_bin_shards, BinShardsConfig)
    register("data", "fineweb_parquet", make_fineweb_parquet, FineWebParquetConfig)
    register("data", "mixture", make_mixture, MixtureConfig)
    register("data", "ultrachat", make_ultrachat, ChatConfig)
    register("data", "cot", make_cot, CotConfig)
    register("data", "preference", make_preference, PreferenceConfig)
