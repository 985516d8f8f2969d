"""``plugins``: every loaded plugin, its distribution and the components it registers."""

from __future__ import annotations

import argparse
import json

from argonne_kit.registry import KINDS, get_registry


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plugins",
        help="list plugins and the components they register",
        description="List every loaded plugin (built-in and third-party, discovered through "
        "the 'argonne_kit' entry-point group): distribution, version and the "
        "components it registers per kind. ARGONNE_KIT_PLUGINS restricts loading.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)


def cmd_plugins(args: argparse.Namespace) -> int:
    registry = get_registry()
    plugins = registry.plugins()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "plugin": p.name,
                        "distribution": p.distribution.name,
                        "version": p.distribution.version,
                        "components": {
                            kind: sorted(c.name for c in p.components if c.kind == kind)
                            for kind in KINDS
                            if any(c.kind == kind for c in p.components)
                        },
                    }
                    for p in plugins
                ],
                indent=2,
            )
        )
        return 0
    if not plugins:
        print("no plugins loaded (check ARGONNE_KIT_PLUGINS)")
    for p in plugins:
        print(f"{p.name}  ({p.distribution.name} {p.distribution.version})")
        for kind in KINDS:
            names = sorted(c.name for c in p.components if c.kind == kind)
            if names:
                print(f"  {kind:<10} {', '.join(names)}")
    return 0
