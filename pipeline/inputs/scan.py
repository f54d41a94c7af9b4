"""The lazy, deterministic walk of the input tree: one file at a time, never the whole list.

Role in the pipeline: the runner pulls from :func:`scan_tree` into a bounded queue, so a tree of
millions of files costs memory proportional to its *largest directory*, not to the tree. Each
directory is listed with ``os.scandir`` and sorted by name (runs are deterministic and resumable
in the same order); subdirectories are entered depth-first as they come up in that order.

What it yields: a :class:`ScanEntry` per regular file to process, or a :class:`ScanProblem` for
something a person should know about. Problems never stop the walk.

Rules (in the order applied):

* **Hidden and temporary names are skipped silently**: a leading ``.`` (files and directories),
  a trailing ``~``, the suffixes ``.tmp .part .partial .crdownload .swp`` (any case), Office lock
  files ``~$*``, the OS litter files ``Thumbs.db`` and ``desktop.ini``, and the folders NAS boxes
  and Windows keep in every share (``@eaDir``: a Synology's thumbnails of every image, five
  JPEGs a scan, each of them paid for as a scan before; ``#recycle``, ``@Recycle`` and
  ``$RECYCLE.BIN``: files the archive deleted; ``#snapshot``, ``@Recently-Snapshot``,
  ``System Volume Information``), any case.
* **skip_dirs** (e.g. the output directory when it lies inside the input) are never entered; they
  are compared by ``(st_dev, st_ino)``, so another spelling or a symlink to them is caught too; one
  that does not exist yet when the walk starts is matched by its resolved path if it appears.
* **Globs** are matched against the POSIX path relative to ``root`` (``letters/1952/a.png``):
  ``*`` and ``?`` never cross ``/``; ``**`` as a whole segment matches zero or more directories
  (``**/*.tif`` matches ``a.tif`` and ``x/y/a.tif``; ``archive/**`` matches everything below
  ``archive``); ``[abc]`` is a character class (``[!abc]`` too), never crossing ``/``. A pattern without ``/`` matches the file *name*
  at any depth (``*.png`` == ``**/*.png``). A file is yielded when it matches some ``include``
  and no ``exclude``. Directories matched by an ``exclude`` ending in ``/**`` are not entered at
  all. Matching is case-sensitive unless ``ignore_case=True``. It is blind to Unicode
  normalization: ``Bücher/**`` typed (NFC) matches a folder ``Bücher`` whose ``ü`` is ``u`` and a
  combining diaeresis (NFD, as names copied from a Mac come), and the other way round.
* **Symlinks are followed**, to files and to directories. A directory whose ``(dev, inode)`` is
  already on the current path, or is a folder above the root (it holds the input folder: ``ln -s
  .. up``), is reported as ``symlink_loop`` (and not entered); a link whose
  target is missing is ``broken_symlink``; a link that loops on itself (ELOOP) is
  ``symlink_loop``. A directory reachable through two different links is walked twice (once per
  path): keeping every visited directory would cost memory proportional to the tree.
* **Unreadable** directories or entries (permissions, I/O errors) are ``unreadable`` with the OS
  error; entries that vanish between listing and ``stat`` are skipped silently.
* Files modified less than ``min_age_s`` seconds ago are ``still_being_written``: the next run
  picks them up. A file whose mtime lies in the future (a clock set ahead) is judged by its
  ctime instead, which the file system sets at each write.
* FIFOs, sockets and devices are ``special_file`` (opening a FIFO would hang the run).
* A folder below the root holding one of ``output_marks`` (a run's ``.pipeline/state.sqlite``)
  is a tree of results, ``output_tree``, and not entered: an output folder once kept inside the
  input and left there when the config moved the output away, or another archive's. Walked, its
  searchable PDFs were paid for again as scans, and every ``.txt`` and ``.json`` rejected.
* A file or directory whose name is not valid UTF-8 (bytes from an old Latin-1 or CP437 share)
  is ``undecodable_name`` and skipped (a directory is not entered): the state store, the ``.json``
  and every report hold names as UTF-8 text, so such a name cannot be recorded faithfully; the
  problem's ``rel`` shows the bad bytes as ``\\xNN`` escapes, for the person who renames it.
* The input folder itself going away during the walk (moved, renamed, deleted, or a share
  unmounted, leaving an empty mount point) is ``input_gone``, the walk's last word (``rel`` is
  ``.``): every entry not yet met then vanishes as if deleted, which the walk otherwise takes in
  silence, so the run would end saying every file is done after a part of the tree.
"""

from __future__ import annotations

import errno
import os
import re
import stat as stat_mod
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

__all__ = ["ScanEntry", "ScanProblem", "scan_tree", "tree_member", "GlobSet", "glob_to_regex",
           "is_ignored_name", "nfc", "PROBLEM_CODES"]

PROBLEM_CODES = {
    "symlink_loop": "a symlinked directory leads back to one of its own parents (not entered)",
    "broken_symlink": "a symlink whose target does not exist",
    "unreadable": "the OS refused to list or stat the entry (see the reason for the OS error)",
    "still_being_written": "modified less than min_age_s ago; picked up by a later run",
    "special_file": "a FIFO, socket or device: not a file that can hold an image",
    "undecodable_name": "a name that is not valid UTF-8 (skipped; a directory is not entered)",
    "input_gone": "the input folder went away during the walk: the files not yet met were not seen",
    "output_tree": "a folder holding a results tree's run files (an earlier output folder): not entered",
}

_TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp")
_LITTER_NAMES = frozenset({"thumbs.db", "desktop.ini",
                           # folders a NAS or Windows keeps in a share: thumbnails, recycle bins, snapshots
                           "@eadir", "#recycle", "@recycle", "$recycle.bin", "#snapshot", "@recently-snapshot",
                           "system volume information"})


@dataclass(frozen=True)
class ScanEntry:
    path: Path          # root / rel (symlinks not resolved: the name the user gave it)
    rel: str            # POSIX path relative to root
    size: int
    mtime_ns: int
    inode: int
    device: int


@dataclass(frozen=True)
class ScanProblem:
    path: Path
    rel: str
    code: str           # one of PROBLEM_CODES
    reason: str


def is_ignored_name(name: str) -> bool:
    """Hidden, temporary or OS-litter names that are skipped without a word."""
    if name.startswith(".") or name.endswith("~") or name.startswith("~$"):
        return True
    low = name.lower()
    return low.endswith(_TEMP_SUFFIXES) or low in _LITTER_NAMES


# --------------------------------------------------------------------------------------------
# globs


def nfc(text: str) -> str:
    """``text`` in Unicode's composed form (NFC), the one form globs are matched in: a name typed
    in a config and the same name copied from a Mac (decomposed, NFD) look alike and are unequal
    strings, so an ``exclude``, ``include`` or override written for one missed the other, silently."""
    return text if text.isascii() or unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def glob_to_regex(pattern: str) -> str:
    """Translate one glob (rules in the module docstring) to an anchored regular expression, for
    paths put in NFC (:func:`nfc`) first."""
    if not pattern or pattern.strip() != pattern:
        raise ValueError(f"invalid glob {pattern!r}: empty or surrounded by spaces")
    pattern = nfc(pattern)
    pat = pattern.strip("/") if pattern != "/" else pattern
    if "/" not in pat and pat != "**":
        pat = "**/" + pat
    out = []
    segments = pat.split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "**":
            out.append(".*" if last else "(?:[^/]*/)*")
            continue
        if "**" in seg:
            raise ValueError(f"invalid glob {pattern!r}: '**' must be a whole path segment")
        out.append(_segment_regex(seg, pattern))
        if not last:
            out.append("/")
    return "".join(out)


def _segment_regex(seg: str, pattern: str) -> str:
    out, i = [], 0
    while i < len(seg):
        c = seg[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = seg.find("]", i + 2 if seg[i + 1:i + 2] in ("!", "]") else i + 1)
            if j < 0:
                raise ValueError(f"invalid glob {pattern!r}: unclosed '['")
            # a "[" in the class is literal ("[[]" is a folder "[old]"'s bracket, not a nested set)
            body = seg[i + 1:j].replace("\\", "\\\\").replace("[", "\\[")
            if body.startswith("!"):
                # a negated class must still not cross "/" (before, the "/" put here was then
                # dropped with the class's own, and "x[!a]y" took "x/y")
                body = "^/" + body[1:]
            out.append("[" + body + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _any_of(regexes: list[str]) -> str:
    """One regular expression matching a whole path that any of ``regexes`` matches."""
    return "(?:" + "|".join(f"(?:{r})" for r in regexes) + r")\Z"


class GlobSet:
    """A set of globs matched against relative POSIX paths; built once, matched many times."""

    def __init__(self, patterns: Iterable[str], *, ignore_case: bool = False):
        if isinstance(patterns, str):
            patterns = (patterns,)
        self.patterns = tuple(patterns)
        flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
        regexes = [glob_to_regex(p) for p in self.patterns]
        # The alternation is grouped before \Z: ungrouped, \Z bound to the last pattern only and
        # every other one matched a prefix (`**/*.png` took `a.png.json`, `a/**` pruned `abc/`).
        self._rx = re.compile(_any_of(regexes), flags) if regexes else None
        # "<dir>/**" patterns let us prune a whole directory without listing it.
        prunes = [r[:-3] for r in regexes if r.endswith("/.*")]
        self._prune = re.compile(_any_of(prunes), flags) if prunes else None

    def match(self, rel: str) -> bool:
        return bool(self._rx and self._rx.match(nfc(rel)))

    def covers_dir(self, rel_dir: str) -> bool:
        """True when every path below ``rel_dir`` matches (so the directory can be skipped)."""
        return bool(self._prune and self._prune.match(nfc(rel_dir)))

    def __bool__(self) -> bool:
        return bool(self.patterns)


# --------------------------------------------------------------------------------------------
# the walk


#: image formats no default ``include`` names (Pillow reads none of them, or only a flattened
#: copy): a walk counts those ``include`` passes by, so a run can say so instead of nothing
LEFT_OUT_IMAGE_SUFFIXES = frozenset({
    ".heic", ".heif", ".avif", ".jxl", ".djvu", ".djv", ".psd", ".psb", ".svg", ".svgz", ".eps", ".xcf",
    ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".raf", ".rw2", ".jpm"})


def scan_tree(root: Path, *, include: Sequence[str] = ("**/*",), exclude: Sequence[str] = (),
              skip_dirs: Iterable[Path] = (), min_age_s: float = 0.0,
              ignore_case: bool = False, left_out: Counter | None = None,
              output_marks: Sequence[str] = ()) -> Iterator[ScanEntry | ScanProblem]:
    """Walk ``root`` lazily; see the module docstring for the rules.

    ``output_marks``: paths (``.pipeline/state.sqlite``) whose presence in a folder below the
    root makes it a tree of results, not of scans: ``output_tree``, not entered.

    ``left_out``: counts, by suffix (lower case), the files of :data:`LEFT_OUT_IMAGE_SUFFIXES`
    that no ``include`` matches and no ``exclude`` names (an ``exclude`` is a choice; a
    default ``include`` that never took a ``.heic`` is not).

    Validation happens at call time (not at the first ``next()``): a missing root or a bad glob
    raises ``FileNotFoundError``/``NotADirectoryError``/``ValueError`` here, so the caller can
    report a configuration error before any work starts.
    """
    root = Path(root)
    st = os.stat(root)                      # raises FileNotFoundError / PermissionError
    if not stat_mod.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"input is not a directory: {root}")
    inc = GlobSet(include, ignore_case=ignore_case)
    exc = GlobSet(exclude, ignore_case=ignore_case)
    skip, pending = set(), set()
    for d in skip_dirs:
        try:
            s = os.stat(d)
        except OSError:
            # Not there yet (e.g. the output folder, created during the run): match it by its
            # resolved path instead, so it is still skipped if it appears mid-walk.
            pending.add(os.path.realpath(d))
            continue
        skip.add((s.st_dev, s.st_ino))
    return _walk(root, (st.st_dev, st.st_ino), inc, exc, frozenset(skip), frozenset(pending),
                 float(min_age_s), _holders(root), left_out, tuple(output_marks))


def _holders(root: Path) -> dict[tuple[int, int], str]:
    """``(dev, inode) -> path`` of every folder above the root's real path, up to ``/``. A link
    inside the tree to one of them (``ln -s .. up``, ``ln -s / everything``) holds the input
    folder itself: followed, it walked the input's sibling folders (the whole disk for ``/``),
    reading and paying for files outside the input, before it met the loop at the input."""
    out: dict[tuple[int, int], str] = {}
    here = os.path.realpath(root)
    while True:
        parent = os.path.dirname(here)
        if parent == here:
            return out
        here = parent
        try:
            s = os.stat(here)
        except OSError:   # a parent we may not stat: a link to it is walked as any other
            continue
        out[(s.st_dev, s.st_ino)] = here


def tree_member(root: Path, *, include: Sequence[str] = ("**/*",), exclude: Sequence[str] = (),
                ignore_case: bool = False, skip_dirs: Iterable[Path] = (),
                output_marks: Sequence[str] = ()) -> Callable[[str], bool]:
    """``rel -> bool``: whether a walk of ``root`` with these globs would come to ``rel`` (a
    regular file there, matched by ``include`` and no ``exclude``, no hidden or temporary name on
    the way, not inside one of ``skip_dirs``, however reached, nor in a folder ``output_marks``
    mark). One ``stat`` a question (and a ``realpath`` when there are ``skip_dirs``, a ``stat`` a
    folder and mark with ``output_marks``), for paths already known (the state store's, its
    failed ones), never a walk."""
    marks = tuple(output_marks)
    inc = GlobSet(include, ignore_case=ignore_case)
    exc = GlobSet(exclude, ignore_case=ignore_case)
    skipped = tuple(Path(os.path.realpath(d)) for d in skip_dirs)

    def member(rel: str) -> bool:
        parts = rel.split("/")
        if any(is_ignored_name(p) for p in parts) or not inc.match(rel) or exc.match(rel):
            return False
        if any(exc.covers_dir("/".join(parts[:i])) for i in range(1, len(parts))):
            return False
        path = os.path.join(root, *parts)
        try:
            if not stat_mod.S_ISREG(os.stat(path).st_mode):
                return False
        except (OSError, ValueError):
            return False
        if any(_marked(os.path.join(root, *parts[:i]), marks) for i in range(1, len(parts))):
            return False
        return not skipped or not any(Path(os.path.realpath(path)).is_relative_to(d) for d in skipped)

    return member


def _walk(root: Path, root_key, inc: GlobSet, exc: GlobSet, skip, pending, min_age_s: float,
          holders: dict[tuple[int, int], str], left_out: Counter | None, marks: tuple[str, ...]):
    # Explicit stack of (dir path, rel prefix, iterator over sorted names, ancestor keys): no
    # recursion limit on deep trees, and only one sorted name list per open directory level.
    ancestors = [root_key]
    stack = [(str(root), "", _list(root, ""), )]
    if isinstance(stack[0][2], ScanProblem):
        yield stack[0][2]
        return
    cutoff_ns = time.time_ns() - int(min_age_s * 1e9) if min_age_s > 0 else None
    while stack:
        dir_path, prefix, names = stack[-1]
        name = next(names, None)
        if name is None:
            stack.pop()
            ancestors.pop()
            continue
        rel = prefix + name
        full = os.path.join(dir_path, name)
        try:
            st = os.stat(full)
        except FileNotFoundError:
            if _is_symlink(full):
                yield ScanProblem(Path(full), rel, "broken_symlink",
                                  f"symlink target does not exist: {_readlink(full)}")
            continue                        # vanished since listing: nothing to do
        except OSError as e:
            if e.errno == errno.ELOOP:
                yield ScanProblem(Path(full), rel, "symlink_loop",
                                  f"symlink points back to itself or a chain too deep ({_readlink(full)})")
            elif e.errno == errno.EACCES and not _lstat_allowed(full):
                # the folder itself may be listed but not searched (r without x: a chmod -R 644):
                # said once for the folder, not once for each of its thousands of scans
                unseen = 1 + sum(1 for _ in names)
                stack.pop()
                ancestors.pop()
                yield ScanProblem(Path(dir_path), prefix.rstrip("/") or ".", "unreadable",
                                  f"the folder can be listed but its entries cannot be opened (permission "
                                  f"denied: it lacks the x, search, permission; chmod a+X it): its {unseen} "
                                  "entries were not seen")
            else:
                yield ScanProblem(Path(full), rel, "unreadable", f"cannot stat: {e.strerror or e}")
            continue
        mode = st.st_mode
        if stat_mod.S_ISDIR(mode):
            key = (st.st_dev, st.st_ino)
            if key in skip or exc.covers_dir(rel) or (pending and os.path.realpath(full) in pending):
                continue
            if key in ancestors:
                yield ScanProblem(Path(full), rel, "symlink_loop",
                                  f"directory leads back to its parent {_ancestor_rel(ancestors, key, stack)!r}; "
                                  "not entered")
                continue
            if key in holders:
                yield ScanProblem(Path(full), rel, "symlink_loop",
                                  f"directory {holders[key]!r} holds the input folder itself; not entered "
                                  "(it would walk the folders beside the input)")
                continue
            if not _decodable(rel):
                yield _undecodable(full, rel, "a folder")
                continue
            if _marked(full, marks):
                yield ScanProblem(Path(full), rel, "output_tree",
                                  f"a folder of results, not scans (it holds {marks[0].split('/')[0]}/: an "
                                  "earlier output folder, or another archive's); not read: move it out of the "
                                  "input, or exclude it")
                continue
            listing = _list(full, rel)
            if isinstance(listing, ScanProblem):
                yield listing
                continue
            ancestors.append(key)
            stack.append((full, rel + "/", listing))
        elif stat_mod.S_ISREG(mode):
            excluded = exc.match(rel)
            if excluded or not inc.match(rel):
                if left_out is not None and not excluded:
                    suffix = os.path.splitext(name)[1].lower()
                    if suffix in LEFT_OUT_IMAGE_SUFFIXES:
                        left_out[suffix] += 1
                continue
            if not _decodable(rel):
                yield _undecodable(full, rel, "a file")
                continue
            if cutoff_ns is not None and (changed_ns := _last_change_ns(st)) > cutoff_ns:
                age = max(0.0, (time.time_ns() - changed_ns) / 1e9)
                yield ScanProblem(Path(full), rel, "still_being_written",
                                  f"modified {age:.1f}s ago (< min_age_s={min_age_s:g}); "
                                  "it will be picked up by a later run")
                continue
            yield ScanEntry(Path(full), rel, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
        else:
            if not inc.match(rel) or exc.match(rel):
                continue
            yield ScanProblem(Path(full), rel, "special_file",
                              f"{_kind(mode)}, not a regular file; skipped")
    gone = _root_gone(root, root_key)
    if gone is not None:
        yield gone


def _root_gone(root: Path, root_key: tuple[int, int]) -> ScanProblem | None:
    """The ``input_gone`` problem when ``root`` is no longer the folder the walk began in."""
    try:
        s = os.stat(root)
    except OSError as e:
        why = f"is gone ({e.strerror or e}): moved, renamed, deleted or unmounted"
    else:
        if (s.st_dev, s.st_ino) == root_key:
            return None
        why = "is another folder now (a share unmounted, or the folder moved away and made anew)"
    return ScanProblem(Path(root), ".", "input_gone",
                       f"the input folder {root} {why} during the walk: the files the walk had not "
                       "met yet were not seen; run again once it is back")


def _last_change_ns(st: os.stat_result) -> int:
    """When the file last changed, for ``min_age_s``: its mtime, or its ctime when the mtime lies
    ahead of the clock. A scanner's or a share's clock set ahead, kept by the copy (``cp -p``,
    ``rsync -t``), gives an mtime that never ages into the past: such a file was left for later
    every night (exit 3, never read, never named). The ctime is the file system's own (each
    write sets it) and no copy sets it, so a file still being written is still seen as young."""
    if st.st_mtime_ns > time.time_ns():
        return st.st_ctime_ns
    return st.st_mtime_ns


def _list(path, rel: str):
    """Sorted names of one directory (hidden/temp names dropped), or a ScanProblem."""
    try:
        with os.scandir(path) as it:
            names = sorted(e.name for e in it if not is_ignored_name(e.name))
    except OSError as e:
        return ScanProblem(Path(path), rel, "unreadable", f"cannot list directory: {e.strerror or e}")
    return iter(names)


def _decodable(rel: str) -> bool:
    """False when the name came from bytes that are not UTF-8 (``os`` decodes them to lone
    surrogates, which SQLite, JSON files and XML cannot hold)."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _undecodable(full: str, rel: str, kind: str) -> ScanProblem:
    shown = os.fsencode(rel).decode("utf-8", "backslashreplace")
    return ScanProblem(Path(full), shown, "undecodable_name",
                       f"{kind} whose name is not valid UTF-8 (the \\xNN bytes); skipped: rename it "
                       "(convmv -f latin1 -t utf8 converts a tree of old names)")


def _marked(folder: str, marks: tuple[str, ...]) -> bool:
    """Whether ``folder`` holds one of ``marks`` (a results tree's own run files)."""
    return any(os.path.isfile(os.path.join(folder, mark)) for mark in marks)


def _lstat_allowed(path: str) -> bool:
    """False when even the entry itself cannot be looked at (its folder lacks the x permission);
    True when only where a link leads is denied, or the entry is gone."""
    try:
        os.lstat(path)
    except PermissionError:
        return False
    except OSError:
        return True
    return True


def _is_symlink(path: str) -> bool:
    try:
        return stat_mod.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _ancestor_rel(ancestors, key, stack) -> str:
    idx = ancestors.index(key)
    return stack[idx][1].rstrip("/") or "."


def _kind(mode: int) -> str:
    if stat_mod.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat_mod.S_ISSOCK(mode):
        return "a socket"
    if stat_mod.S_ISCHR(mode) or stat_mod.S_ISBLK(mode):
        return "a device"
    return "a special file"
