"""Range validators for recipe config fields, with the field name and the value in the message.

Each also refuses NaN and ±inf: a comparison alone lets them through (``inf > 0``) or fails with a
message that does not say why. A plugin's config class may use these or ``attrs.validators``.
"""

from __future__ import annotations

import math
from typing import Any

import attrs


def _check(attribute: attrs.Attribute[Any], value: float, ok: bool, bound: str) -> None:
    if not (math.isfinite(value) and ok):
        finite = "" if math.isfinite(value) else " and finite"
        raise ValueError(f"{attribute.name} must be {bound}{finite}, got {value}")


def positive(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    """``value > 0`` (None passes: the field's "not set")."""
    if value is not None:
        _check(attribute, value, value > 0, "> 0")


def non_negative(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    """``value >= 0`` (None passes: the field's "not set")."""
    if value is not None:
        _check(attribute, value, value >= 0, ">= 0")


def at_least_one(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    """``value >= 1`` (None passes: the field's "not set")."""
    if value is not None:
        _check(attribute, value, value >= 1, ">= 1")


def fraction(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    """``0 <= value <= 1`` (None passes: the field's "not set")."""
    if value is not None:
        _check(attribute, value, 0 <= value <= 1, "in [0, 1]")


def unit_interval(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    """``0 < value <= 1``."""
    _check(attribute, value, 0 < value <= 1, "in (0, 1]")
