"""Reading recipe files: TOML, ``extends`` chains, deep merge and command-line overrides.

The result is a plain nested dict plus *provenance*: for every dotted key, the file (or
``command line``) that gave it its final value, so that later errors can name the right file.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from argonne_kit.errors import RecipeError

COMMAND_LINE = "command line"
_LEADING_KEY = re.compile(r"^([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)+): ")


class RawRecipe:
    """A merged recipe as plain data, with where each key came from."""

    def __init__(self, data: dict[str, Any], origin: dict[str, str], path: Path | None):
        self.data = data
        self.origin = origin
        self.path = path

    def locate(self, message: str) -> str:
        """``message`` prefixed with the file that set the dotted key it starts with
        (``"train.seq_len: …"`` → ``"child.toml: train.seq_len: …"``); unchanged otherwise."""
        match = _LEADING_KEY.match(message)
        if match is None:
            return message
        return f"{self.origin_of(match.group(1))}: {message}"

    def origin_of(self, dotted: str) -> str:
        """The file that set ``dotted`` (or the closest parent that was set as a whole)."""
        parts = dotted.split(".")
        while parts:
            key = ".".join(parts)
            if key in self.origin:
                return self.origin[key]
            parts.pop()
        return str(self.path) if self.path else COMMAND_LINE


def read_recipe_file(path: str | Path) -> RawRecipe:
    """Read ``path`` following ``extends`` (a path relative to the file, or a list of them;
    later files win, the file itself wins over everything it extends)."""
    path = Path(path)
    data, origin = _read_with_extends(path, stack=())
    return RawRecipe(data, origin, path)


def _read_with_extends(path: Path, stack: tuple[Path, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    resolved = path.resolve()
    if resolved in stack:
        chain = " -> ".join(str(p) for p in (*stack, resolved))
        raise RecipeError(f"{stack[-1]}: extends cycle: {chain}")
    data = read_toml(path)
    if isinstance(data.get("stage"), list):
        raise RecipeError(
            f"{path}: a pipeline file ([[stage]] tables), not a recipe: `argonne-kit run` and "
            f"`resolve` take it; other commands (and extends) take one of its stage recipes"
        )
    extends = data.pop("extends", [])
    if isinstance(extends, str):
        extends = [extends]
    if not isinstance(extends, list) or not all(isinstance(e, str) for e in extends):
        raise RecipeError(f"{path}: extends: expected a path or a list of paths, got {extends!r}")
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for parent in extends:
        parent_path = path.parent / parent
        if not parent_path.exists():
            raise RecipeError(f"{path}: extends: file not found: {parent_path}")
        parent_data, parent_origin = _read_with_extends(parent_path, (*stack, resolved))
        deep_merge(merged, parent_data, origin, parent_origin)
    own_origin = {key: str(path) for key in _dotted_keys(data)}
    deep_merge(merged, data, origin, own_origin)
    return merged, origin


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise RecipeError(f"recipe not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); TOML files are UTF-8") from None
    except IsADirectoryError:
        raise RecipeError(f"{path}: is a directory, expected a recipe .toml file") from None


def deep_merge(
    base: dict[str, Any],
    update: dict[str, Any],
    origin: dict[str, Any] | None = None,
    update_origin: dict[str, Any] | None = None,
    prefix: str = "",
) -> dict[str, Any]:
    """Merge ``update`` into ``base`` in place: tables merge key by key, everything else
    (scalars, arrays) is replaced. Provenance of replaced keys follows the update."""
    for key, value in update.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            # A table that switches plugin (`kind`) must not inherit the old plugin's keys.
            if "kind" in value and value["kind"] != base[key].get("kind"):
                base[key] = {}
                _drop_origin(origin, dotted)
            deep_merge(base[key], value, origin, update_origin, dotted + ".")
        else:
            base[key] = _copy(value)
            if origin is not None:
                _drop_origin(origin, dotted)
                for sub in _dotted_keys({key: value}, prefix):
                    origin[sub] = (update_origin or {}).get(sub, COMMAND_LINE)
    return base


def _drop_origin(origin: dict[str, Any] | None, dotted: str) -> None:
    if origin is None:
        return
    for key in [k for k in origin if k == dotted or k.startswith(dotted + ".")]:
        del origin[key]


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _dotted_keys(data: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        keys.append(dotted)
        if isinstance(value, dict):
            keys.extend(_dotted_keys(value, dotted + "."))
    return keys


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=1e-4"`` → ``(["optim", "lr"], 1e-4)``. The value is read as a TOML value
    (numbers, booleans, quoted strings, arrays, inline tables); anything that is not valid TOML is
    taken as a bare string, so ``run.dir=runs/x`` works unquoted. The schema then checks the type."""
    if "=" not in text:
        raise RecipeError(f"{COMMAND_LINE}: override {text!r}: expected KEY=VALUE (e.g. optim.lr=1e-4)")
    key, raw = text.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or not all(p.strip() for p in parts):
        raise RecipeError(f"{COMMAND_LINE}: override {text!r}: empty key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return parts, value


def apply_overrides(raw: RawRecipe, overrides: list[str]) -> RawRecipe:
    """Apply ``KEY=VALUE`` overrides (later ones win) to a merged recipe."""
    for text in overrides:
        parts, value = parse_override(text)
        update: dict[str, Any] = value
        for part in reversed(parts):
            update = {part: update}
        deep_merge(raw.data, update, raw.origin, None)
    return raw
