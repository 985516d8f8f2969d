"""Registers the synthetic data source of :mod:`train_fixtures` for every trainer test."""

import pytest
from train_fixtures import register_synthetic_data


@pytest.fixture(scope="session", autouse=True)
def synthetic_data_plugin():
    register_synthetic_data()
