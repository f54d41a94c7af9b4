"""The server reads top down: no import circle among the modules of ``pipeline/server`` (every
import counts, at module level, under ``TYPE_CHECKING`` or inside a function)."""

from __future__ import annotations

from pathlib import Path

from import_graph import find_cycle, imports_of, module_name

SERVER = Path(__file__).resolve().parents[1] / "pipeline" / "server"


def graph() -> dict[str, set[str]]:
    root = SERVER.parent.parent
    mods = {module_name(p, root): p for p in SERVER.rglob("*.py")}
    return {m: {i.target for i in imports_of(p, root) if i.target in mods and i.target != m} for m, p in mods.items()}


def test_the_checker_sees_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_in_the_server():
    g = graph()
    assert "pipeline.server.lifecycle" in g["pipeline.server.webhooks"]  # the checker reads real imports
    assert find_cycle(g) is None, " -> ".join(find_cycle(g) or [])
    assert "pipeline.server.webhooks" not in g["pipeline.server.jobs"]
