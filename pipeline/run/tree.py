"""The input tree as a run sees it: the walk, and whether a path the state store remembers is
still in it.

Why the second: the state store keeps a row for every path it ever met, and a scan that failed
(a broken file, an unreadable one) keeps its failed row after the scan is deleted, renamed, or
left out by a new ``exclude``. Counted as it stood, such a row made every later night exit 1 and
list it in ``failures.json``, with nothing the archive could do about it (the path is not walked
again, so neither a fix nor ``--retry-failed`` reaches it). The row itself is kept (were the path
to come back unchanged, it is not paid for again); only what is *in the tree* counts.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import Callable

from pipeline.config import RUN_REPORT, STATE_FILE, Config
from pipeline.inputs.scan import scan_tree, tree_member


#: the files beside the state store: SQLite's journals and the run lock (``runner``, ``cli``)
STATE_COMPANIONS = ("", "-wal", "-shm", "-journal", ".lock")


def _exclude(cfg: Config) -> tuple[str, ...]:
    """``exclude``, and the state store's own files when ``state_path`` lies in the input. Before,
    with ``include: ["**/*"]`` the run read them as scans: the database, its lock and its shared
    memory rejected (``not_an_image``) and its WAL, written as the run read it, ``changed``, so
    every night exited 3, work left for ever. (An output folder in the input is passed by anyway.)"""
    state = cfg.state_file
    if not state.is_relative_to(cfg.input) or state.is_relative_to(cfg.output):
        return cfg.exclude
    rel = state.relative_to(cfg.input).as_posix()
    return (*cfg.exclude, *(_literal(rel + suffix) for suffix in STATE_COMPANIONS))


def _literal(path: str) -> str:
    """A glob matching ``path`` only: its ``*``, ``?``, ``[`` and spaces each in a class of its own
    (a glob may not begin or end with a space)."""
    return "".join(f"[{c}]" if c in "*?[ " else c for c in path)


def _output_marks(cfg: Config) -> tuple[str, ...]:
    """What marks a folder as a tree of results: the run files a run leaves in its output folder's
    control folder (``config.control_dir``; ``report.write_run_report``)."""
    control = cfg.control_dir.name
    return (f"{control}/{STATE_FILE}", f"{control}/{RUN_REPORT}")


def walk(cfg: Config, left_out: Counter | None = None):
    """The run's scan of the input tree (``plan`` walks the same one); ``left_out`` counts the
    images of formats ``include`` passed by (``scan.LEFT_OUT_IMAGE_SUFFIXES``).

    The output folder is never entered, wherever it lies: inside the input, or outside it and
    reached through a link in the tree (``ln -s /srv/ocr results``; the walk follows links). Before,
    only an output inside the input was skipped, and through such a link a run read its own
    outputs as scans: every ``.txt`` and ``.json`` rejected, every searchable PDF paid for again,
    and each night one level deeper (``results/results/a.png.pdf.pdf``). Any other folder of
    results (one holding a run's ``.pipeline/``) is not entered either: an ``output_tree`` problem."""
    return scan_tree(cfg.input, include=cfg.include, exclude=_exclude(cfg), skip_dirs=(cfg.output,),
                     min_age_s=cfg.min_file_age_s, ignore_case=True, left_out=left_out,
                     output_marks=_output_marks(cfg))


def left_out_line(left_out: Counter) -> str | None:
    """The run's line on the images ``include`` passed by, or None when there were none."""
    if not left_out:
        return None
    kinds = ", ".join(f"{suffix} {n}" for suffix, n in sorted(left_out.items()))
    return (f"{sum(left_out.values())} image files no include pattern matches were left out ({kinds}): "
            "add their pattern to include to have each read or refused with a reason, or to exclude "
            "to stop this line")


def in_tree(cfg: Config) -> Callable[[str], bool]:
    """``rel -> bool``: would the walk still come to this recorded path (a file there, matched
    by ``include`` and no ``exclude``, no hidden or temporary name on the way)? Each path is
    looked at once: a run's end asks for its exit code and again for its report."""
    return lru_cache(maxsize=None)(tree_member(cfg.input, include=cfg.include, exclude=_exclude(cfg),
                                               ignore_case=True, skip_dirs=(cfg.output,),
                                               output_marks=_output_marks(cfg)))
