"""Structuring plain recipe data into attrs config classes — strictly — and back with cattrs.

attrs classes are walked here (so every error carries its dotted path and a suggestion); leaf
types go through a cattrs converter with strict primitive hooks, which also unstructures.

TOML already gives typed values, so nothing is coerced: ``"256"`` for an ``int`` field is an
error, not 256. Unknown keys are errors with a close-match suggestion; a class may declare
``__recipe_hints__ = {"learning_rate": "lr"}`` so that a misspelling of a common alternative name
still points at the one canonical key (keys have one name only). A field may carry
``metadata={"key": "from"}`` when its TOML key is a Python keyword.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

from argonne_kit.errors import suggest


class FieldError(Exception):
    """A structuring failure at a dotted path (converted to a RecipeError by the caller)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def type_name(tp: Any) -> str:
    """A short, readable name for a type annotation (``int``, ``int | None``, ``"bf16" | "fp32"``)."""
    origin = get_origin(tp)
    if tp is type(None):
        return "none"
    if origin is Literal:
        return " | ".join(repr(a) if isinstance(a, str) else str(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in get_args(tp))
    if origin in (list, tuple, dict):
        args = ", ".join(type_name(a) for a in get_args(tp) if a is not Ellipsis)
        return f"{origin.__name__}[{args}]"
    if attrs.has(tp):
        return "table"
    return getattr(tp, "__name__", str(tp))


def show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a table"
    return repr(value)


def toml_key(field: attrs.Attribute[Any]) -> str:
    return str(field.metadata.get("key", field.name))


def _strict(tp: type) -> Callable[[Any, Any], Any]:
    def hook(value: Any, _tp: Any) -> Any:
        ok = isinstance(value, tp) and not (tp is not bool and isinstance(value, bool))
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not ok:
            raise FieldError("", f"expected {tp.__name__}, got {show(value)}")
        return value

    return hook


def make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    for tp in (int, float, str, bool):
        conv.register_structure_hook(tp, _strict(tp))
    conv.register_structure_hook(Path, lambda v, _: Path(_strict(str)(v, str)))
    conv.register_unstructure_hook(Path, str)

    def unstructure_attrs(cls: type) -> Callable[[Any], dict[str, Any]]:
        overrides: dict[str, Any] = {
            f.name: override(rename=toml_key(f)) for f in attrs.fields(cls) if toml_key(f) != f.name
        }
        return make_dict_unstructure_fn(cls, conv, **overrides)

    conv.register_unstructure_hook_factory(attrs.has, unstructure_attrs)
    return conv


CONVERTER = make_converter()


def structure(data: Any, tp: Any, path: str = "") -> Any:
    """Structure ``data`` into ``tp``; raise :class:`FieldError` naming the dotted path of the
    first problem (unknown key with suggestion, wrong type, missing required key)."""
    return _structure(data, tp, path)


def _structure(data: Any, tp: Any, path: str) -> Any:
    origin = get_origin(tp)
    if attrs.has(tp):
        return _structure_attrs(data, tp, path)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if data is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _structure(data, arg, path)
            except FieldError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise FieldError(path, f"expected {type_name(tp)}, got {show(data)}")
    if origin is Literal:
        if data not in get_args(tp) or type(data) is not type(next(a for a in get_args(tp) if a == data)):
            raise FieldError(
                path,
                f"expected one of {type_name(tp)}, got {show(data)}"
                + (suggest(data, [a for a in get_args(tp) if isinstance(a, str)]) if isinstance(data, str) else ""),
            )
        return data
    if origin is list:
        if not isinstance(data, list):
            raise FieldError(path, f"expected {type_name(tp)}, got {show(data)}")
        (item,) = get_args(tp) or (Any,)
        return [_structure(v, item, f"{path}[{i}]") for i, v in enumerate(data)]
    if origin is tuple:
        if not isinstance(data, (list, tuple)):
            raise FieldError(path, f"expected {type_name(tp)}, got {show(data)}")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_structure(v, args[0], f"{path}[{i}]") for i, v in enumerate(data))
        if len(args) != len(data):
            raise FieldError(path, f"expected {len(args)} values ({type_name(tp)}), got {len(data)}")
        return tuple(_structure(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(data, args)))
    if origin is dict:
        if not isinstance(data, dict):
            raise FieldError(path, f"expected a table, got {show(data)}")
        _, val_tp = get_args(tp) or (str, Any)
        return {k: _structure(v, val_tp, f"{path}.{k}") for k, v in data.items()}
    if tp is Any:
        return data
    try:
        return CONVERTER.structure(data, tp)
    except FieldError as exc:
        raise FieldError(path, exc.message) from None
    except Exception as exc:
        raise FieldError(path, f"expected {type_name(tp)}, got {show(data)} ({exc})") from None


def _structure_attrs(data: Any, cls: type, path: str) -> Any:
    if not isinstance(data, dict):
        raise FieldError(path, f"expected a table, got {show(data)}")
    fields = {toml_key(f): f for f in attrs.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        sub = f"{path}.{key}" if path else key
        field = fields.get(key)
        if field is None:
            raise FieldError(sub, "unknown key" + _key_hint(key, list(fields), getattr(cls, "__recipe_hints__", {})))
        kwargs[field.name] = _structure(value, hints[field.name], sub)
    missing = [k for k, f in fields.items() if f.default is attrs.NOTHING and f.name not in kwargs]
    if missing:
        raise FieldError(f"{path}.{missing[0]}" if path else missing[0], "required key is missing")
    try:
        return cls(**kwargs)
    except FieldError:
        raise
    except (ValueError, TypeError) as exc:
        raise FieldError(_failing_field(cls, kwargs, path), str(exc)) from None


def _failing_field(cls: type, kwargs: dict[str, Any], path: str) -> str:
    """The dotted path of the first given field whose own validator rejects its value (so the
    error names the file that set that key), else the section's path."""
    for field in attrs.fields(cls):
        if field.validator is not None and field.name in kwargs and _rejects(field, kwargs[field.name]):
            return f"{path}.{toml_key(field)}" if path else toml_key(field)
    return path


def _rejects(field: attrs.Attribute[Any], value: Any) -> bool:
    validator = field.validator
    if validator is None:
        return False
    try:
        validator(None, field, value)
    except (ValueError, TypeError):
        return True
    except AttributeError:  # a validator that needs the instance cannot be run alone
        return False
    return False


def _key_hint(key: str, names: list[str], alternatives: dict[str, str]) -> str:
    """``"; did you mean 'lr'?"`` — close matches among the keys and among common alternative
    spellings (mapped to their canonical key); else the list of valid keys."""
    matches = difflib.get_close_matches(key, names, n=2, cutoff=0.6)
    for alt in difflib.get_close_matches(key, list(alternatives), n=2, cutoff=0.6):
        if alternatives[alt] not in matches:
            matches.append(alternatives[alt])
    if matches:
        return "; did you mean " + " or ".join(repr(m) for m in matches) + "?"
    return suggest(key, names) or f"; valid keys: {', '.join(names)}"


def unstructure(obj: Any) -> Any:
    """attrs instance → plain dict with TOML key names (None values dropped: TOML has no null,
    and every optional field defaults to None, so dropping loses nothing)."""
    return _drop_none(CONVERTER.unstructure(obj))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_none(v) for v in value]
    return value
