"""One run at a time per state store, by ``flock``.

Why flock and not a PID file: the kernel drops the lock when the process dies, however it
dies (SIGKILL, OOM, power cut of a container), so there is never a stale lock to clean up and
never a race between "check" and "create". The holder's PID and start time are written into
the lock file only to make the refusal message useful.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path


class LockHeld(Exception):
    """Another run holds the lock; the message says which process."""


class RunLock:
    def __init__(self, path: Path, who: str = "this run") -> None:
        self.path = Path(path)
        self.who = who   # what the refusal says exits: the run, or `verify --requeue`
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown process"
            os.close(fd)
            raise LockHeld(f"another run holds the lock {self.path} ({holder}); "
                           f"{self.who} exits without touching anything") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
