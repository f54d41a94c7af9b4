"""The threads that open and pre-check the scans: a stopped run does not wait for them.

Why not ``asyncio.to_thread``: its threads are the event loop's default executor, which
``asyncio.run`` joins once the run's coroutine has returned, after the run report and the exit
line. A page still being opened when a stop came held the process there: the pre-check of a
300 dpi page (decoding, the upright and skew measures, a PDF page rendered) takes seconds on a
loaded machine, and the stop outlived ``shutdown_grace_s`` by that much (found by stopping real
runs at random moments: 5.7-5.8 s for a 5 s grace, 5.6 s for a 2 s grace with 2400 x 3400 px
pages, 3.5 s of it after the exit line).

The work done here only reads the source (``inputs.pages.open_source``, ``PageSource.page``), so
leaving it is safe: at the end of the run nobody awaits it any more, the pool is shut without
waiting, and the process leaves (``pipeline.__main__._leave``) with the thread. Writes (the
outputs) stay in the default executor and are still waited for: one cut short would leave a
temporary file beside the outputs.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from pipeline.run.crashpoints import crashpoint

T = TypeVar("T")


def _read(fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    crashpoint("in_prepare")   # tests: a page whose opening takes long (PIPELINE_CRASHPOINT)
    return fn(*args)


class ReadPool:
    """``await pool.run(fn, *args)`` runs a read-only step off the event loop."""

    def __init__(self, workers: int = 2) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="prepare")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, _read, fn, args)

    def close(self) -> None:
        """Queued steps are dropped and one in progress is left to finish on its own, unwaited."""
        self._executor.shutdown(wait=False, cancel_futures=True)
