"""The package's rooms and the one direction of their imports (docs/design.md).

Each module belongs to a room; a room may import only rooms below it. Nothing here runs
the code: the imports are read from the source."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "order_engine"

# Highest first. A room imports only the rooms after it in this list.
ROOMS = [
    "cli",
    "devserver",
    "app",
    "api",
    "engine",
    "store",
    "chain",
    "queue",
    "hub",
    "metrics",
    "routing",
    "embedded",
    "migrations",
    "leader",
    "processes",
    "batch",
    "outage",
    "logs",
    "config",
    "formats",
    "domain",
]
# Rooms that stand side by side: neither imports the other, whatever their order above.
SIDE_BY_SIDE = {("chain", "queue"), ("chain", "hub"), ("queue", "hub"), ("hub", "metrics")}


def room_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "order_engine" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in ROOMS else None


def imports() -> list[tuple[str, str, str]]:
    """(importing module, its room, imported room) for every import inside the package."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        module = "order_engine." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        own = room_of(module.removesuffix(".__init__").removesuffix(".__main__"))
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                target = room_of(name)
                if target is not None and target != own:
                    found.append((module, own, target))
    return found


def test_every_module_is_in_a_room() -> None:
    modules = {
        p.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for p in PACKAGE.glob("*")
        if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())
    }
    assert modules - {"__init__", "__main__"} <= set(ROOMS)


def test_imports_only_run_down() -> None:
    upward = [
        f"{module} ({own}) imports {target}"
        for module, own, target in imports()
        if ROOMS.index(target) < ROOMS.index(own)
        or (own, target) in SIDE_BY_SIDE
        or (target, own) in SIDE_BY_SIDE
    ]
    assert upward == []


def test_the_domain_imports_nothing_of_the_engine() -> None:
    assert [(m, t) for m, own, t in imports() if own == "domain"] == []
