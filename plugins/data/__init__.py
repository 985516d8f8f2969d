"""Built-in data sources: ``bin_shards``, ``fineweb_parquet``, ``mixture``, ``ultrachat``, ``cot`` and
``preference`` (the DataSource contract in ``argonne_kit.contracts.data``).

Registering imports only the torch-free :mod:`.configs`: each factory (``lazy_factory``) imports its
source's module (and with it torch) when it is called, so resolving a recipe never loads torch.
"""

from __future__ import annotations

from argonne_kit.registry import hookimpl, lazy_factory

from .configs import BinShardsConfig, ChatConfig, CotConfig, FineWebParquetConfig, MixtureConfig, PreferenceConfig


@hookimpl
def argonne_kit_register_components(register):
    register("data", "bin_shards", lazy_factory(f"{__name__}.bin_shards:make_bin_shards"), BinShardsConfig)
    register(
        "data",
        "fineweb_parquet",
        lazy_factory(f"{__name__}.fineweb_parquet:make_fineweb_parquet"),
        FineWebParquetConfig,
    )
    register("data", "mixture", lazy_factory(f"{__name__}.mixture:make_mixture"), MixtureConfig)
    register("data", "ultrachat", lazy_factory(f"{__name__}.chat:make_ultrachat"), ChatConfig)
    register("data", "cot", lazy_factory(f"{__name__}.chat:make_cot"), CotConfig)
    register("data", "preference", lazy_factory(f"{__name__}.chat:make_preference"), PreferenceConfig)
