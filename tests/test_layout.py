"""The package's layout holds: rooms import one way, no import cycles, SQL only in the store,
a small top level, and a public API whose `__all__` is exactly what it exports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import agent

PACKAGE = Path(agent.__file__).resolve().parent
# Floors, bottom up: a module may import its own room and the floors below it, never above.
FLOORS: dict[str, int] = {
    "types": 0, "errors": 1, "config": 2,
    "store": 3,
    "embed": 4, "learn": 4, "llm": 4,
    "labeller": 5, "routing": 5, "batch": 5,  # batch: the pool-wide work (local or Ray)
    "loop": 6,
    "tui": 7,  # the review app
    "app": 8,  # the CLI: its `review` command opens the review app
    "__init__": 9,
}  # fmt: skip
PURE_ROOMS = {"learn"}  # arrays in, arrays out: nothing of the store or the loop
SQL = re.compile(r"\b(SELECT\s+\S+.*\bFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, name: str) -> set[str]:
    """Modules of `agent` that `path` imports, at any depth (lazy imports count too)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("agent"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join([*anchor, base] if base else anchor)
            if base.startswith("agent"):
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {m for m in _imports(path, name) if m in modules and m != name}
        for name, path in modules.items()
    }


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_no_import_cycle_inside_the_package() -> None:
    graph, state, cycles = _graph(), {}, []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*trail[trail.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_rooms_import_only_their_own_floor_and_below() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in _graph().items()
        for target in targets
        if _room(target) != _room(module) and FLOORS[_room(target)] >= FLOORS[_room(module)]
        and _room(module) != "__init__"
    ]
    assert upward == []


def test_every_room_has_a_floor_and_a_docstring() -> None:
    for module, path in _modules().items():
        assert _room(module) in FLOORS, f"{module}: a room the layout does not know"
        if path.name == "__init__.py":
            assert ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))), module


def test_pure_rooms_touch_no_store_and_no_loop() -> None:
    impure = [
        f"{module} -> {target}"
        for module, targets in _graph().items()
        if _room(module) in PURE_ROOMS
        for target in targets
        if _room(target) not in PURE_ROOMS | {"types", "errors", "config"}
    ]
    assert impure == []


def test_sql_lives_only_in_the_store() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for module, path in _modules().items()
        if _room(module) != "store" and SQL.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_top_level_stays_small() -> None:
    assert len(list(PACKAGE.glob("*.py"))) <= 8


@pytest.mark.parametrize("name", agent.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(agent, name) is not None


def test_all_lists_exactly_the_public_api() -> None:
    source = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    homes = next(
        node.value for node in source.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_HOMES"
    )
    assert isinstance(homes, ast.Dict)
    exported = {ast.literal_eval(key) for key in homes.keys if key is not None}
    assert sorted(agent.__all__) == sorted(exported)  # ruff (RUF022) keeps the order
    assert len(set(agent.__all__)) == len(agent.__all__)
    rooms = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    rooms |= {p.stem for p in PACKAGE.glob("*.py")}
    public = {n for n in vars(agent) if not n.startswith("_")} - {"annotations"} - rooms
    assert public <= set(agent.__all__), "names in `agent` that `__all__` does not list"
