"""The packages are the pipeline's stages, and these rules keep them that way (docs/architecture.md).

Every import counts: at module level, under ``TYPE_CHECKING`` or inside a function. A room is a
package directly under ``pipeline/`` (``inputs``, ``run``, ``ocr``, ...) or a module at the top
level (``config``, ``cli``, ...). A broken rule names the file, the line and the import.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from import_graph import Import, find_cycle, imports_of, module_name

ROOT = Path(__file__).resolve().parents[1]

HTTP = ("aiohttp", "requests", "httpx", "urllib.request", "http.client", "http.server", "websockets")

# room -> (what it must not import, why); a prefix matches the module and everything under it
RULES: dict[str, tuple[tuple[str, ...], str]] = {
    "deapi": (("pipeline.inputs", "pipeline.run", "pipeline.formats", "pipeline.ocr", "pipeline.server"),
              "deapi/ is the HTTP client: it knows nothing of files, pages, runs or the server"),
    "inputs": (HTTP + ("pipeline.deapi", "pipeline.server", "pipeline.run"),
               "inputs/ finds and prepares pages: no HTTP, no runs"),
    "ocr": (("pipeline.server", "pipeline.run", "pipeline.deapi", "pipeline.inputs", "pipeline.formats"),
            "ocr/ is shared by the server and the client: it imports neither"),
    "server": (("pipeline.run", "pipeline.inputs", "pipeline.formats", "pipeline.deapi"),
               "server/ is a deAPI look-alike: it imports nothing of the client"),
    "formats": (HTTP + ("pipeline.deapi", "pipeline.server", "pipeline.run"),
                "formats/ renders a stored document: no HTTP, no runs"),
}


def room_of(module: str) -> str | None:
    """``pipeline.run.state`` -> ``run``; ``pipeline.config`` -> ``config``; others -> None."""
    parts = module.split(".")
    if parts[0] != "pipeline" or len(parts) < 2:
        return None
    return parts[1]


def _matches(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


def all_imports(root: Path) -> list[Import]:
    return [imp for path in sorted((root / "pipeline").rglob("*.py")) for imp in imports_of(path, root)]


def violations(root: Path) -> list[str]:
    """Every broken rule under ``root/pipeline``, as 'file:line imports X (rule)'."""
    found = []
    for imp in all_imports(root):
        room = room_of(module_name(imp.file, root))
        if room not in RULES:
            continue
        forbidden, why = RULES[room]
        for prefix in forbidden:
            if _matches(imp.target, prefix):
                found.append(f"{imp.file.relative_to(root)}:{imp.line} imports {imp.target} ({why})")
    return found


def room_graph(root: Path) -> dict[str, set[str]]:
    rooms: dict[str, set[str]] = {}
    for imp in all_imports(root):
        src = room_of(module_name(imp.file, root))
        if src is None:
            continue
        rooms.setdefault(src, set())
        dst = room_of(imp.target)
        if dst and dst != src and ((root / "pipeline" / dst).is_dir() or (root / "pipeline" / f"{dst}.py").exists()):
            rooms[src].add(dst)
    return rooms


def cycle_evidence(root: Path, cycle: list[str]) -> list[str]:
    """For each arrow of a circle, the first import that makes it (file:line imports X)."""
    lines = []
    for src, dst in zip(cycle, cycle[1:]):
        imp = next(i for i in all_imports(root)
                   if room_of(module_name(i.file, root)) == src and room_of(i.target) == dst)
        lines.append(f"{imp.file.relative_to(root)}:{imp.line} imports {imp.target}")
    return lines


# --- the real tree ---------------------------------------------------------------------------

def test_the_stages_keep_their_rules():
    assert violations(ROOT) == []


def test_no_import_circle_between_rooms():
    g = room_graph(ROOT)
    assert {"inputs", "run", "ocr", "formats", "deapi", "server"} <= set(g)  # the checker sees the rooms
    assert "ocr" in g["server"] and "inputs" in g["run"]  # ...and reads real imports
    cycle = find_cycle(g)
    assert cycle is None, "import circle " + " -> ".join(cycle) + ":\n" + "\n".join(cycle_evidence(ROOT, cycle))


def test_the_top_level_keeps_only_entry_points_and_shared_modules():
    top = sorted(p.stem for p in (ROOT / "pipeline").glob("*.py"))
    assert len(top) <= 8, top
    assert not (ROOT / "pipeline" / "server" / "engines").exists()


# --- the checker fails where it should (synthetic trees) -----------------------------------

def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / "pipeline" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for d in [p for p in (tmp_path / "pipeline").rglob("*") if p.is_dir()] + [tmp_path / "pipeline"]:
        (d / "__init__.py").touch()
    return tmp_path


@pytest.mark.parametrize("rel, text, expected", [
    ("ocr/engine.py", "from pipeline.server.jobs import x\n", "pipeline/ocr/engine.py:1 imports pipeline.server.jobs"),
    ("ocr/engine.py", "def f():\n    from ..run import state\n", "pipeline/ocr/engine.py:2 imports pipeline.run"),
    ("inputs/scan.py", "import aiohttp\n", "pipeline/inputs/scan.py:1 imports aiohttp"),
    ("inputs/scan.py", "from urllib.request import urlopen\n", "pipeline/inputs/scan.py:1 imports urllib.request"),
    ("deapi/client.py", "from pipeline.inputs.prepare import PreparedPage\n",
     "pipeline/deapi/client.py:1 imports pipeline.inputs.prepare"),
    ("server/jobs.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pipeline.run.state import S\n",
     "pipeline/server/jobs.py:3 imports pipeline.run.state"),
])
def test_a_broken_rule_names_the_file_and_the_import(tmp_path, rel, text, expected):
    root = _tree(tmp_path, {rel: text, "run/state.py": "", "server/jobs.py": "", "inputs/prepare.py": ""} | {rel: text})
    found = violations(root)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_allowed_imports_pass(tmp_path):
    root = _tree(tmp_path, {"server/jobs.py": "from pipeline.ocr.pool import EngineRunner\n",
                            "inputs/prepare.py": "from pipeline.ocr.imaging import flatten_on_white\n",
                            "ocr/pool.py": "", "ocr/imaging.py": ""})
    assert violations(root) == []
    assert find_cycle(room_graph(root)) is None


def test_a_circle_between_rooms_is_found_and_explained(tmp_path):
    root = _tree(tmp_path, {"inputs/pdf.py": "from pipeline.config import PdfConfig\n",
                            "config.py": "from pipeline.inputs.scan import glob_to_regex\n",
                            "inputs/scan.py": ""})
    cycle = find_cycle(room_graph(root))
    assert cycle == ["config", "inputs", "config"]
    assert cycle_evidence(root, cycle) == ["pipeline/config.py:1 imports pipeline.inputs.scan",
                                           "pipeline/inputs/pdf.py:1 imports pipeline.config"]
