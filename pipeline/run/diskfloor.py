"""A floor of free space (``min_free_mb``) on the disks of the outputs and the state store.

Why: a page is paid when the API accepts its upload, and its request id is written to the state
store right after. When the disk fills between the two, the id is lost: the page stays
``submitting`` and the next run must send it again, knowingly but paid twice; up to
``jobs_in_flight`` pages at once. Meeting the full disk in a write (``writable.cannot_write``)
stops the run, but only after the write that could not be made. So the run keeps a floor: before
each new upload it asks how much room is left, and under the floor it stops taking new pages
while there is still room to record the request ids of those in flight and to write their
results. A run that starts under the floor does not start.

The figure is what ``df`` calls Avail (``f_bavail``: the blocks a reserve for root does not
hold), in MB of 1,048,576 bytes as ``df -m`` counts. ``os.statvfs`` costs a system call, not a
scan; it is still read at most once a ``every_s`` (a second), not once a page, and never per
byte written.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Callable

from pipeline.config import Config
from pipeline.run.writable import state_key

MB = 1024 * 1024
EVERY_S = 1.0   # the longest a reading of the free space is trusted
UNREADABLE = "cannot read the free space"


def free_bytes(path: Path) -> int:
    """Bytes a non-root writer may still use on the file system of ``path`` (``df``'s Avail)."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class DiskFloor:
    """``check()``: None while every watched file system has ``min_free_mb`` free, else what is
    short (the key, the path, the free space), for the run's stop message.

    The file systems are the output folder's and the state store's, each once (the default state
    store lives under the output). Once under the floor the answer stays: the run is stopping.
    A free space that cannot be read (``statvfs`` failing: a stale NFS handle, an I/O error, the
    folder removed) is short too: before, the error reached each file's upload, and every file
    left failed as an internal error, with a strike and a traceback each."""

    def __init__(self, config: Config, *, free: Callable[[Path], int] = free_bytes, every_s: float = EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.floor = config.min_free_mb * MB
        self._free, self._every_s, self._clock = free, every_s, clock
        self.places: list[tuple[str, Path, Path]] = []   # (key, the path named, a folder on its disk)
        devices: set[int | None] = set()
        for key, named, folder in (("output", config.output, config.output),
                                   (state_key(config), config.state_file, config.state_file.parent)):
            try:
                device: int | None = folder.stat().st_dev   # both folders exist: check_writable made them
            except OSError:
                device = None   # gone since (a mount lost): check() says so
            if device is None or device not in devices:
                devices.add(device)
                self.places.append((key, named, folder))
        self._read_at: float | None = None
        self._short: str | None = None

    def check(self) -> str | None:
        if self.floor <= 0 or self._short is not None:
            return self._short
        now = self._clock()
        if self._read_at is not None and now - self._read_at < self._every_s:
            return None
        self._read_at = now
        for key, path, folder in self.places:
            try:
                free = self._free(folder)
            except OSError as exc:   # a stale NFS handle, an I/O error, the folder removed: no room known
                self._short = (f"min_free_mb: {UNREADABLE} on the disk of {key} ({path}): "
                               f"{exc.strerror or exc}")
                break
            if free < self.floor:
                # rounded down: a byte short of 64 MB read "64.0 MB free ..., under the floor of 64 MB"
                shown = math.floor(free * 10 / MB) / 10
                self._short = (f"min_free_mb: {shown:.1f} MB free on the disk of {key} ({path}), under the floor "
                               f"of {self.floor // MB} MB")
                break
        return self._short


def _remedy(why: str, lower: str) -> str:
    if UNREADABLE in why:   # no figure to lower a floor under: the file system itself is in doubt
        return "check that file system is mounted and readable (min_free_mb: 0 skips the reading)"
    return f"free space (or lower min_free_mb{lower})"


def short_at_start(why: str) -> str:
    return f"{why}: {_remedy(why, '; 0 turns the floor off')}, then run again; nothing was submitted"


def short_mid_run(why: str) -> str:
    return (f"{why}: no new pages are submitted (the request ids of those in flight are kept and their "
            f"results written); {_remedy(why, '')}, then run again; the next run resumes where "
            "this one stopped, without paying again")
