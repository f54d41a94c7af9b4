"""The scan, run in a thread of its own and handed to the workers one entry at a time.

Why a dedicated thread and not ``asyncio.to_thread`` batches: the walk of a tree on a network
share can spend seconds between two matching files, and a batch of N *matches* waits for all N
(in a tree of 1,000,000 entries with 100 images the first submit came after the whole walk). A
thread that pushes each entry into the event loop the moment it is found gives the first file
to a worker within milliseconds, whatever the tree looks like.

Why a daemon thread: a stop must end the run within its grace period however large the tree;
the walk checks the stop flag between entries, and even a walk stuck in one slow ``stat`` of a
dead mount never keeps the process alive (the executor's threads would: ``asyncio.run`` and
the interpreter both join them at exit).

Back-pressure: the thread blocks while ``capacity`` entries wait for a worker, so a huge tree
never sits in memory. ``close()`` wakes every waiting ``get()`` with ``None`` at once; nothing
ever blocks on a full queue (the old feeder hung in ``queue.put`` when a stop came while the
queue was full and nothing drained it).

``TreeCount`` is the same walk without the work: it counts matching files in the background,
so progress can show a total and an ETA as soon as the count is done.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any, Callable, Iterator

_END = object()


class ScanFeed:
    """``await feed.get()`` -> the next scan item, or ``None`` when the walk ended or was closed."""

    def __init__(self, make_walk: Callable[[], Iterator[Any]], *, capacity: int = 1024,
                 name: str = "scan") -> None:
        self._make_walk = make_walk
        self._capacity = threading.Semaphore(max(1, capacity))
        self._stop = threading.Event()
        self._items: deque[Any] = deque()
        self._waiters: deque[asyncio.Future] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ended = False
        self.error: BaseException | None = None   # the walk raised (reported by the runner)
        self.found = 0                            # items handed over so far
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> "ScanFeed":
        self._loop = asyncio.get_running_loop()
        self._thread.start()
        return self

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            for item in self._make_walk():
                while not self._capacity.acquire(timeout=0.2):
                    if self._stop.is_set():
                        return
                if self._stop.is_set():
                    return
                self._post(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop, reported there
            self.error = exc
        finally:
            self._post(_END)

    def _post(self, item: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._deliver, item)
        except RuntimeError:  # the loop closed meanwhile: nobody is listening any more
            pass

    # -- the loop -----------------------------------------------------------------------------

    def _deliver(self, item: Any) -> None:
        if item is _END:
            self._ended = True
            while self._waiters:
                fut = self._waiters.popleft()
                if not fut.done():
                    fut.set_result(None)
            return
        if self._stop.is_set():
            return
        self.found += 1
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(item)
                self._capacity.release()
                return
        self._items.append(item)

    async def get(self) -> Any:
        if self._items:
            self._capacity.release()
            return self._items.popleft()
        if self._ended or self._stop.is_set():
            return None
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.result() is not None:
                self._items.appendleft(fut.result())  # handed to us as we were cancelled: keep it
                self._capacity.acquire(blocking=False)
            raise

    def close(self) -> list[Any]:
        """Stop the walk; wake every waiter with ``None``; return the items nobody took."""
        self._stop.set()
        left = list(self._items)
        self._items.clear()
        for _ in left:
            self._capacity.release()
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
        return left

    @property
    def ended(self) -> bool:
        return self._ended


class TreeCount:
    """Counts what ``make_walk()`` yields (``accept(item)`` true) in a daemon thread."""

    def __init__(self, make_walk: Callable[[], Iterator[Any]], accept: Callable[[Any], bool]) -> None:
        self._make_walk, self._accept = make_walk, accept
        self._stop = threading.Event()
        self.total: int | None = None
        self._thread = threading.Thread(target=self._run, name="count", daemon=True)

    def start(self) -> "TreeCount":
        self._thread.start()
        return self

    def _run(self) -> None:
        n = 0
        try:
            for item in self._make_walk():
                if self._stop.is_set():
                    return
                if self._accept(item):
                    n += 1
        except Exception:  # noqa: BLE001 - a count is a nicety; the real walk reports problems
            return
        self.total = n

    def close(self) -> None:
        self._stop.set()
