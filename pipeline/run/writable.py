"""Can this run write where it must? Checked before any work starts, by ``run`` and ``plan``.

Why a check of its own: an output folder or state path the user cannot write to used to surface
deep inside the run (the lock, the state store, the first result) as an unexpected ``OSError``,
i.e. exit 70 "internal error ... please report it", which sends people to report a bug for
what is a setting or a permission. Here each folder is created if missing and a probe file is
written and removed in it, so the message names the key, the path and what was denied, and the
exit code is ``CONFIG_ERROR`` (2): the fix is the setting or the folder's permissions, as for
any other bad setting, and nothing was started.

The same holds when the disk fills *during* a run (or the file system turns read-only, or a
quota is reached): :func:`cannot_write` recognises those errors wherever they surface (an
output's write, the state store's SQLite, the run report), and the runner stops, leaves the file
for the next run and exits 2 with the message instead of crashing with exit 70. So does a
folder inside the output tree (or the state's) that the run is denied mid-run (a subfolder
made read-only or owned by another user, a file where a folder must go): the check above only
probes the top, and such a denial had every file under it fail as an "internal error".
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from pathlib import Path

from pipeline.config import Config


class PathNotWritable(Exception):
    """A folder or file the run must write cannot be written; the message names key and path."""


def _what(exc: OSError) -> str:
    if exc.errno == errno.ENOTDIR:
        return "a part of the path is a file, not a folder"
    if exc.errno == errno.EEXIST:
        return "a file of that name is in the way of a folder"
    if exc.errno == errno.EISDIR:
        return "a folder of that name is in the way of a file"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror or type(exc).__name__


def _folder(key: str, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise PathNotWritable(f"{key}: cannot create the folder {folder}: a file of that name is in the way") from None
    except OSError as exc:
        raise PathNotWritable(f"{key}: cannot create the folder {folder}: {_what(exc)}"
                              f"{f' ({exc.filename})' if exc.filename and str(exc.filename) != str(folder) else ''}"
                              ) from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".pipeline-write-probe-", dir=folder)
    except OSError as exc:
        raise PathNotWritable(f"{key}: cannot write in the folder {folder}: {_what(exc)}") from None
    os.close(fd)
    os.unlink(probe)


def _file(key: str, path: Path) -> None:
    if not path.exists():
        return
    try:
        os.close(os.open(path, os.O_RDWR))
    except OSError as exc:
        raise PathNotWritable(f"{key}: cannot write the file {path}: {_what(exc)}") from None


def state_key(config: Config) -> str:
    """The config key that names the state store's place, for messages: ``state_path`` when set,
    else ``output`` (the store then lives under it)."""
    return "state_path" if config.state_path is not None else "output"


def check_writable(config: Config) -> None:
    """Raise ``PathNotWritable`` unless the output folder, its control folder and the state
    store (with its lock beside it) can be written."""
    _folder("output", config.output)
    _folder("output", config.control_dir)
    key = state_key(config)
    _folder(key, config.state_file.parent)
    for path in (config.state_file, config.state_file.with_name(config.state_file.name + ".lock")):
        _file(key, path)


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
_DENIED = (errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EEXIST, errno.EISDIR)


def _ours(filename: object, config: Config | None) -> bool:
    """Whether ``filename`` is one the run writes (in the output tree, or the state store and the
    files SQLite keeps beside it): a denial there is a setting; elsewhere (an input file, a
    library's cache) it is not ours to call one. The state's folder as a whole is not taken: it
    may hold the input tree."""
    if config is None or not isinstance(filename, (str, os.PathLike)):
        return False
    path = Path(os.path.abspath(filename))
    state = config.state_file
    return path.is_relative_to(config.output) or (path.parent == state.parent
                                                 and path.name.startswith(state.name))


def cannot_write(exc: BaseException | None, config: Config | None = None) -> str | None:
    """What a person must fix, when ``exc`` (or an exception it was raised from) is a full disk,
    a reached quota or a read-only file system, or (given the run's ``config``) a folder or file
    in the output or state tree the run is denied; None for anything else (a bug stays a bug)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in _FULL:
            where = f" ({exc.filename})" if exc.filename else ""
            return f"{_what(exc) if exc.errno != errno.EDQUOT else 'the disk quota is used up'}{where}"
        if isinstance(exc, OSError) and exc.errno in _DENIED and _ours(exc.filename, config):
            return f"{_what(exc)} ({exc.filename})"
        if isinstance(exc, sqlite3.OperationalError) and (
                getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY)
                or "disk is full" in str(exc)):
            return f"the state store cannot be written: {exc}"
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def cannot_write_advice(why: str) -> str:
    return (f"cannot write: {why}: free space (or fix the folder's permissions or the file system), then "
            "run again; the next run "
            "resumes where this one stopped, without paying again")
