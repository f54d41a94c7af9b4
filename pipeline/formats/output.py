"""Output paths that mirror the input tree, and atomic writes.

The rule: the results of ``<input>/a/b/scan.tif`` are ``<output>/a/b/scan.tif.txt`` and
``<output>/a/b/scan.tif.json``. Keeping the source's full name (extension included) means two
inputs can never share an output path (``scan.jpg`` and ``scan.png`` would both become
``scan.txt`` under an extension-dropping rule), and the mapping is reversible for ``verify``.
Two *files* never do; a file and a *folder* can: the folder ``scan.tif.json/`` beside
``scan.tif`` is mirrored where ``scan.tif``'s ``.json`` goes (:func:`name_clash`).
Run files (state, report, failures) live in ``<output>/.pipeline/``, which no input can map
to because the scan skips hidden names.

Writes go to a temporary file in the same directory and are renamed into place, so a reader
(or a crash) never sees a half-written result.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any, Sequence

import aiofiles.os

TEXT_SUFFIX = ".txt"
PAGE_SEPARATOR = "\f"  # form feed between pages in the .txt, as OCR tools conventionally do
JSON_SUFFIX = ".json"


def _safe_parts(rel: str) -> list[str]:
    """The parts of an input's posix relative path, as ``PurePosixPath(rel).parts`` gives them
    (empty and ``.`` parts dropped); an absolute path, ``..`` or nothing is refused.

    Plain string work, not pathlib: a rerun asks for every output of every done file, and
    building and comparing ``Path`` objects was about a third of a 100,000-file rerun's time
    (cProfile, 2026-12-07)."""
    if rel.startswith("/"):
        raise ValueError(f"not a safe relative path: {rel!r}")
    parts = [p for p in rel.split("/") if p and p != "."]
    if not parts or ".." in parts:
        raise ValueError(f"not a safe relative path: {rel!r}")
    return parts


def output_path(output_root: Path, rel: str, suffix: str) -> Path:
    """The output with ``suffix`` (``.txt``, ``.alto.xml``, ...) for an input's posix relative path."""
    parts = _safe_parts(rel)
    parts[-1] += suffix
    return output_root.joinpath(*parts)


def output_rel(rel: str, suffix: str) -> str:
    """``output_path(root, rel, suffix)`` relative to ``root``, as a posix string (what the state
    store lists as a file's outputs), without building a path."""
    return "/".join(_safe_parts(rel)) + suffix


def output_paths(output_root: Path, rel: str) -> tuple[Path, Path]:
    """The ``.txt`` and ``.json`` paths for an input's posix relative path."""
    return output_path(output_root, rel, TEXT_SUFFIX), output_path(output_root, rel, JSON_SUFFIX)


def source_rel_for(output_root: Path, output_path: Path) -> str | None:
    """Inverse of ``output_paths`` for ``.json`` result files (used by ``verify``)."""
    if output_path.suffix != JSON_SUFFIX:
        return None
    rel = output_path.relative_to(output_root).as_posix()
    return rel[: -len(JSON_SUFFIX)]


def too_long(output_root: Path, rel: str, suffixes: Sequence[str]) -> str | None:
    """Why the outputs of ``rel`` cannot be named in ``output_root`` (a name over the file
    system's NAME_MAX, 255 bytes on most, or a path over PATH_MAX, counting the longest suffix and
    the temp file's ``.``/``.tmp``), or None. Asked before a page is paid for: otherwise the OS
    refuses the write only after the API has read the page."""
    parts = _safe_parts(rel)
    if len(os.fsencode(rel)) <= _headroom(output_root, tuple(suffixes)):
        return None   # no name or path of its outputs can reach a limit (most files: cheap)
    longest = max(suffixes, key=lambda sfx: len(sfx.encode("utf-8")))
    temp_name = f".{parts[-1]}{longest}.tmp"     # temp_path's name for output_path(..., longest)
    name_max, path_max = _limits(output_root)
    root = str(output_root)
    full_path = os.path.join(*([] if root == "." else [root]), *parts[:-1], temp_name)   # as str(Path) spells it
    name, full = len(os.fsencode(temp_name)), len(os.fsencode(full_path))
    if name > name_max:
        return (f"its output {longest} would need a {name}-byte file name (with the temp file's "
                f"'.' and '.tmp'); the file system takes {name_max}: rename the file")
    if full >= path_max:
        return (f"its output {longest} would need a {full}-byte path; the system takes {path_max - 1}: "
                "shorten its folders or the output path")
    return None


def name_clash(input_root: Path, output_root: Path, rel: str, suffixes: Sequence[str],
               reserved: Sequence[str] = ()) -> str | None:
    """Why ``rel``'s outputs and the mirror of an input folder would need the same name, or None.

    The output tree holds ``a.png``'s ``a.png.json`` beside the mirror of every input folder, so
    a folder named ``a.png.json`` beside ``a.png`` needs that name too. Before, whichever came
    second could not be written, and the run stopped (exit 2, "a folder is in the way") before
    every later file, night after night. The rule that ends it: a file with such a folder beside
    it is refused (one file, not a folder's worth), unless its outputs are on disk already (done on
    an earlier night, before the folder came; or kept after the file was deleted): then the
    folder's files are refused. Asked only for files about to be read; a few ``stat`` calls,
    most of them for one file. A results folder left in the output tree by such an input folder,
    since renamed, is in the way as much. ``reserved``: names the run writes in every output folder
    (``folder.mets.xml`` with ``mets_per_folder``), which a file named ``folder`` would overwrite
    with its own METS, or have overwritten."""
    parts = _safe_parts(rel)
    in_dir, out_dir = os.path.join(input_root, *parts[:-1]), os.path.join(output_root, *parts[:-1])
    for sfx in suffixes:
        name = parts[-1] + sfx
        if name in reserved:
            return (f"its output {name} has the name of the folder's own {name} (mets_per_folder), which "
                    "would replace it: rename the file")
        if os.path.isdir(os.path.join(in_dir, name)):
            return (f"its output {name} would have the name of the input folder {name} beside it, whose "
                    "results go in a folder of that name: rename the file or the folder")
        if os.path.isdir(os.path.join(out_dir, name)):
            return (f"its output {name} is a folder in the output tree (the results of an input folder of "
                    "that name, kept after it was renamed or deleted): rename the file, or move that "
                    "results folder away")
    for depth, folder in enumerate(parts[:-1]):
        for sfx in suffixes:
            stem = folder[: -len(sfx)]
            if not stem or not folder.endswith(sfx):
                continue
            above = parts[:depth]
            taken = os.path.join(output_root, *above, folder)
            if os.path.lexists(taken) and not os.path.isdir(taken):
                where = "/".join(above + [stem])
                return (f"its folder {folder} has the name of the {sfx} output of {where}, a file in the "
                        f"output tree already: rename the folder (or rename {where} and move its outputs away)")
    return None


@functools.lru_cache(maxsize=8)
def _headroom(output_root: Path, suffixes: tuple[str, ...]) -> int:
    """The longest relative path (bytes) whose outputs' names and paths are surely within the
    limits: a temp file's name is at most ``.`` + the whole path + the longest suffix + ``.tmp``,
    its path the root, a ``/`` and that."""
    name_max, path_max = _limits(output_root)
    longest = max(len(sfx.encode("utf-8")) for sfx in suffixes) + len(".") + len(".tmp")
    root = len(os.fsencode(str(output_root))) + len("/")
    return min(name_max - longest, path_max - 1 - root - longest)


@functools.lru_cache(maxsize=8)
def _limits(output_root: Path) -> tuple[int, int]:
    """NAME_MAX and PATH_MAX where the outputs go (asked of the nearest existing folder)."""
    probe = output_root
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        return os.pathconf(probe, "PC_NAME_MAX"), os.pathconf(probe, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 255, 4096


def temp_path(path: Path) -> Path:
    """The temp name for ``path``: deterministic, so a write killed half-way leaves a file that
    the next write of the same output overwrites and renames (one run at a time holds the lock,
    and one worker writes a given output), and ``verify`` can recognise any other leftover."""
    return path.with_name(f".{path.name}.tmp")


def write_atomic_sync(path: Path, data: str | bytes) -> None:
    """Write text (UTF-8) or bytes to ``path`` via a temp file and ``os.replace`` (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json_atomic_sync(path: Path, document: Any) -> None:
    """A JSON document written atomically (results, and the run report at the end of a run)."""
    write_atomic_sync(path, json.dumps(document, ensure_ascii=False, indent=2) + "\n")


def _write_results_sync(output_root: Path, rel: str, text: str, document: dict[str, Any]) -> tuple[str, str]:
    txt, js = output_paths(output_root, rel)
    write_atomic_sync(txt, text)
    write_json_atomic_sync(js, document)
    return txt.relative_to(output_root).as_posix(), js.relative_to(output_root).as_posix()


# One trip to aiofiles' thread pool for both files. Opening, writing, closing and renaming
# each through aiofiles took a dozen thread hops a file, which cost more CPU than the writes
# (bench/pipeline_runs.py), and the JSON is serialised off the event loop too.
_write_results_in_thread = aiofiles.os.wrap(_write_results_sync)


async def write_results(output_root: Path, rel: str, text: str, document: dict[str, Any]) -> tuple[str, str]:
    """Write the ``.txt`` then the ``.json`` (the json last: its presence means complete)."""
    return await _write_results_in_thread(output_root, rel, text, document)
