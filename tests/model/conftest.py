"""Fixtures of the model tests (defined in model_fixtures.py, a uniquely named module)."""

from model_fixtures import make_model, make_v1_model  # noqa: F401
