"""Built-in data sources: ``bin_shards``, ``fineweb_parquet``, ``mixture``, ``ultrachat``, ``cot``
and ``preference`` (the DataSource contract in ``argonne_kit.contracts.data``)."""

from __future__ import annotations

from argonne_kit.registry import hookimpl

from .bin_shards import BinShardsConfig, make_bin_shards
from .chat import ChatConfig, CotConfig, PreferenceConfig, make_cot, make_preference, make_ultrachat
from .fineweb_parquet import FineWebParquetConfig, make_fineweb_parquet
from .mixture import MixtureConfig, make_mixture


@hookimpl
def argonne_kit_register_components(register):
    register("data", "bin_shards", make_bin_shards, BinShardsConfig)
    register("data", "fineweb_parquet", make_fineweb_parquet, FineWebParquetConfig)
    register("data", "mixture", make_mixture, MixtureConfig)
    register("data", "ultrachat", make_ultrachat, ChatConfig)
    register("data", "cot", make_cot, CotConfig)
    register("data", "preference", make_preference, PreferenceConfig)
