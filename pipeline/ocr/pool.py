"""Run OCR engines off the event loop: the async façade the server calls.

Why worker processes: RapidOCR holds ~1-1.5 GB and is not thread-safe, and a native crash or
an out-of-memory kill must take down one worker, not the server. Each worker process builds
one engine once and the pool is recycled after ``recycle_after`` pages (RSS creeps with varied
page sizes). The ``fast`` engine is pure Python and instant, so it runs in a thread instead and
costs no process start-up in tests.

Failures a job can meet, each an ``EngineError`` the server turns into a failed job:

* undecodable bytes -> ``INVALID_INPUT`` (raised in the worker; the worker lives on);
* the engine failing on one page -> ``PROCESSING_ERROR``;
* the worker process dying (crash, OOM kill) -> ``WORKER_TIMEOUT`` (deAPI's code for a lost
  worker, which clients treat as transient); the pool is replaced so later jobs run;
* the engine not loading at all (missing package or data) -> ``ENGINE_UNAVAILABLE``, raised by
  ``start()`` so the server refuses to start with a message instead of failing every job.
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from PIL import Image, ImageOps

from pipeline.ocr.imaging import WIDE_GRAY_MODES, flatten_on_white, wide_gray_to_l

from . import ENGINE_NAMES, create_engine
from .base import Engine, EngineError, OcrPage

Image.MAX_IMAGE_PIXELS = 200_000_000  # the API's pixel limits are far below; this only guards bombs

CLOSE_TIMEOUT_S = 30.0  # close() waits this long for a page in progress, then kills the workers

_worker_engine: Engine | None = None
_worker_error: str | None = None


PARENT_CHECK_S = 1.0  # how often a worker process looks whether its parent is still there


def exit_with_parent() -> None:
    """In a worker process: exit as soon as the process that started it is gone.

    Why: a pool worker waits for its next task on a pipe whose write end it holds itself, so it
    never sees its parent die. After a ``kill -9`` of a run (or the OOM killer, or a power cut of
    the parent alone) its engine and geometry workers lived on as orphans, each holding its
    memory (~100 MB with Tesseract, 1-1.5 GB with RapidOCR), one more set per killed run. A
    daemon thread looks every ``PARENT_CHECK_S`` whether the parent's process id is still this
    process's parent (an orphan is re-parented to init or a subreaper)."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid is None:
        return                                   # not a child of a multiprocessing parent

    def watch() -> None:
        while os.getppid() == parent.pid:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def owned_by_parent() -> None:
    """In a worker process, first thing: the parent owns shutdown. SIGINT is ignored; SIGTERM is
    obeyed only from the parent (a broken pool's workers are ended with it), and every other
    sender's is ignored; and the worker exits with the parent (``exit_with_parent``).

    Why SIGTERM too: a stop of the whole process group (systemd's ``systemctl stop`` with its
    default KillMode=control-group, ``kill -TERM -PGID``) killed the page in OCR, which the run
    then recorded as failed (``WORKER_TIMEOUT``, a failed run towards quarantine) instead of
    letting it finish in the grace. Both signals were blocked since the process began
    (``run_in_worker``): ignoring SIGINT discards one that came meanwhile, and SIGTERM stays
    blocked in every thread (threads inherit the mask) for one thread that asks who sent it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not hasattr(signal, "pthread_sigmask"):
        return exit_with_parent()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    parent = multiprocessing.parent_process()
    if hasattr(signal, "sigwaitinfo") and parent is not None and parent.pid is not None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        threading.Thread(target=_sigterm_from_parent_only, args=(parent.pid,), name="sigterm-from-parent",
                         daemon=True).start()
    else:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    exit_with_parent()


def _sigterm_from_parent_only(parent: int) -> None:
    while True:
        if signal.sigwaitinfo({signal.SIGTERM}).si_pid == parent:
            os._exit(128 + signal.SIGTERM)


def pool_processes(executor: Executor) -> list:
    """The worker processes of a process pool (none for a thread pool), to kill one that will
    not finish. Taken before ``shutdown()``, which forgets them even with ``wait=False`` (and
    forgets its manager thread, so a later ``shutdown(wait=True)`` waits for nothing: a close
    that shut down first, then waited with a timeout, returned at once and left the page in
    progress to hold the process's exit, then found no processes to kill)."""
    return list((getattr(executor, "_processes", None) or {}).values())


def run_in_worker(loop: asyncio.AbstractEventLoop, executor: Executor, fn, *args) -> asyncio.Future:
    """``loop.run_in_executor``, with SIGINT (and SIGTERM, ``owned_by_parent``) blocked in this
    thread while the executor may start a worker process (``ProcessPoolExecutor.submit`` spawns it
    here, on demand).

    Why: a Ctrl-C at a terminal reaches the whole process group. A spawned worker ignores SIGINT
    only once its initializer runs, after a fresh interpreter has started and imported the
    parent's main module (half a second or more); a Ctrl-C in that window killed it, the pool
    broke, and the page it was given failed: a geometry worker's page was written without word
    positions for good (found by a random Ctrl-C tour). A blocked signal stays blocked across
    ``exec``, so the child starts deaf to it; this thread's pending SIGINT is delivered the moment
    the mask is restored (CPython's resource tracker is started the same way)."""
    if not hasattr(signal, "pthread_sigmask"):
        return loop.run_in_executor(executor, fn, *args)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        return loop.run_in_executor(executor, fn, *args)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _init_worker(engine_name: str, threads: int | None = None, options: dict | None = None) -> None:
    """Build this worker's one engine; remember a failure so every task reports it clearly.

    The worker ignores SIGINT: a Ctrl-C at a terminal reaches the whole process group, and the
    parent owns shutdown (it lets pages in progress finish within its grace, then closes the
    pool). A worker killed by that SIGINT would fail its page and break the pool mid-stop."""
    global _worker_engine, _worker_error
    if threading.current_thread() is threading.main_thread():  # a worker process (``fast`` runs in threads)
        owned_by_parent()
    if threads:
        from .rapid import THREADS_ENV

        os.environ[THREADS_ENV] = str(threads)
    try:
        _worker_engine = create_engine(engine_name, **(options or {}))
    except Exception as exc:  # noqa: BLE001 - reported to the caller, not swallowed
        _worker_error = f"cannot load the {engine_name!r} OCR engine: {type(exc).__name__}: {exc}"


def decode_image(image_bytes: bytes) -> Image.Image:
    """Decode upload bytes into an RGB/L image with EXIF orientation applied."""
    if not image_bytes:
        raise EngineError("cannot decode image: the upload is empty", code="INVALID_INPUT")
    try:
        image = Image.open(io.BytesIO(image_bytes))
        image.load()
        image = ImageOps.exif_transpose(image)
    except Exception as exc:  # Pillow raises many types for bad bytes
        raise EngineError(f"cannot decode image: {exc}", code="INVALID_INPUT") from exc
    return _to_rgb_or_l(image)


def _to_rgb_or_l(image: Image.Image) -> Image.Image:
    """RGB or L, what both engines read; transparency is flattened onto white (not black)."""
    if image.mode in ("RGB", "L"):
        return image
    if image.mode == "1":
        return image.convert("L")
    if image.mode in WIDE_GRAY_MODES or image.mode.startswith("I;16"):  # 16/32-bit grey: stretch, not clip
        return wide_gray_to_l(image)
    if image.mode == "P" and "transparency" not in image.info:
        return image.convert("RGB")
    return flatten_on_white(image)


def _engine() -> Engine:
    if _worker_engine is None:
        raise EngineError(_worker_error or "OCR worker has no engine (initializer did not run)",
                          code="ENGINE_UNAVAILABLE")
    return _worker_engine


def _ping() -> str:
    return _engine().name


def _settings() -> dict:
    """The worker's engine settings as built (RapidOCR's parameters; empty for the others)."""
    return dict(getattr(_engine(), "settings", None) or {})


def _recognize_in_worker(image_bytes: bytes, language: str | None) -> OcrPage:
    engine = _engine()
    image = decode_image(image_bytes)
    try:
        return engine.recognize(image, language)
    except EngineError:
        raise
    except Exception as exc:  # one bad page fails its job, never the worker
        raise EngineError(f"{engine.name} could not read this image: {type(exc).__name__}: {exc}") from exc


class EngineRunner:
    """Async OCR façade: ``await runner.recognize(bytes, language) -> OcrPage``."""

    def __init__(self, engine: str, workers: int = 1, recycle_after: int = 300,
                 options: dict | None = None) -> None:
        self.engine = engine
        self.options = dict(options or {})   # engine options (``truth``: folder, corrupt)
        self.workers = max(1, workers)
        self.recycle_after = recycle_after
        self._executor: Executor | None = None
        self._pages_on_executor = 0
        self._lock = asyncio.Lock()
        self.replaced_pools = 0  # dead-worker replacements plus recycles, for logs and tests
        self.close_timeout_s = CLOSE_TIMEOUT_S  # an embedded run that is stopping lowers it

    def _threads_per_worker(self) -> int | None:
        """ONNX Runtime threads when several workers share the cores (one worker: all cores)."""
        if self.workers == 1:
            return None
        return max(1, (os.cpu_count() or 1) // self.workers)

    def _new_executor(self) -> Executor:
        if self.engine in ("fast", "truth"):
            # Each thread gets its own engine via the same initializer (one instance per worker).
            return ThreadPoolExecutor(max_workers=self.workers, initializer=_init_worker,
                                      initargs=(self.engine, None, self.options))
        ctx = multiprocessing.get_context("spawn")  # no forked copies of the event loop or sockets
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(self.engine, self._threads_per_worker(), self.options))

    async def start(self) -> None:
        """Start the pool and wait until one worker has built its engine (fails loudly if it can't)."""
        if self.engine not in ENGINE_NAMES:
            raise ValueError(f"unknown OCR engine {self.engine!r}; choose one of {', '.join(ENGINE_NAMES)}")
        if self._executor is None:
            self._executor = self._new_executor()
            self._pages_on_executor = 0
        loop = asyncio.get_running_loop()
        try:
            await run_in_worker(loop, self._executor, _ping)
        except (EngineError, BrokenProcessPool) as exc:
            await self.close()
            message = str(exc) if isinstance(exc, EngineError) else f"the {self.engine} worker process died on start-up"
            raise EngineError(message, code="ENGINE_UNAVAILABLE") from exc

    async def engine_settings(self) -> dict:
        """What a worker's engine was built with (threads, models, switches): for logs and tests."""
        if self._executor is None:
            await self.start()
        return await run_in_worker(asyncio.get_running_loop(), self._executor, _settings)

    async def _executor_for_next_page(self) -> Executor:
        async with self._lock:
            if self._executor is None:
                self._executor = self._new_executor()
                self._pages_on_executor = 0
            elif self.engine not in ("fast", "truth") and self._pages_on_executor >= self.recycle_after:
                old, self._executor = self._executor, self._new_executor()
                self._pages_on_executor = 0
                self.replaced_pools += 1
                old.shutdown(wait=False)  # pages already running there finish; its workers then exit
            self._pages_on_executor += 1
            return self._executor

    async def recognize(self, image_bytes: bytes, language: str | None = None) -> OcrPage:
        executor = await self._executor_for_next_page()
        loop = asyncio.get_running_loop()
        try:
            return await run_in_worker(loop, executor, _recognize_in_worker, image_bytes, language)
        except BrokenProcessPool as exc:
            async with self._lock:  # replace the dead pool so later jobs still run
                if self._executor is executor:
                    self._executor = self._new_executor()
                    self._pages_on_executor = 0
                    self.replaced_pools += 1
            executor.shutdown(wait=False, cancel_futures=True)
            raise EngineError("OCR worker process died (crash or out of memory) while reading this page",
                              code="WORKER_TIMEOUT") from exc

    async def close(self) -> None:
        """Cancel queued pages, let a running one finish (up to ``close_timeout_s``), reap workers."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        workers = pool_processes(executor)
        shutdown = asyncio.ensure_future(asyncio.to_thread(executor.shutdown, True, cancel_futures=True))
        try:
            await asyncio.wait_for(asyncio.shield(shutdown), self.close_timeout_s)
        except asyncio.TimeoutError:
            for proc in workers:
                proc.kill()
            # The killed workers end the shutdown at once; awaited, it releases the pool's queues
            # here. Left running, it kept them past the process's exit (``os._exit``, no
            # finalizers), and multiprocessing's resource tracker wrote "There appear to be 5
            # leaked semaphore objects to clean up at shutdown" to stderr after a stopped run's
            # last line (cron mails stderr).
            await shutdown
