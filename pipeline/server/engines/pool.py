"""Run OCR engines off the event loop: the async façade the server calls.

Why worker processes: RapidOCR holds ~1-1.5 GB and is not thread-safe, and a native crash or
an out-of-memory kill must take down one worker, not the server. Each worker process builds
one engine once and is recycled after ``recycle_after`` pages (RSS creeps with varied page
sizes). The ``fast`` engine is pure Python and instant, so it runs in a thread instead and
costs no process start-up in tests.
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from PIL import Image, ImageOps

from . import ENGINE_NAMES, create_engine
from .base import Engine, EngineError, OcrPage

Image.MAX_IMAGE_PIXELS = 200_000_000  # the API's pixel limits are far below; this only guards bombs

_worker_engine: Engine | None = None


def _init_worker(engine_name: str) -> None:
    global _worker_engine
    _worker_engine = create_engine(engine_name)


def decode_image(image_bytes: bytes) -> Image.Image:
    """Decode upload bytes into an RGB/L image with EXIF orientation applied."""
    try:
        image = Image.open(io.BytesIO(image_bytes))
        image.load()
    except Exception as exc:  # Pillow raises many types for bad bytes
        raise EngineError(f"cannot decode image: {exc}", code="INVALID_INPUT") from exc
    image = ImageOps.exif_transpose(image)
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    return image


def _recognize_in_worker(image_bytes: bytes, language: str | None) -> OcrPage:
    assert _worker_engine is not None, "worker initializer did not run"
    return _worker_engine.recognize(decode_image(image_bytes), language)


class EngineRunner:
    """Async OCR façade: ``await runner.recognize(bytes, language) -> OcrPage``."""

    def __init__(self, engine: str, workers: int = 1, recycle_after: int = 300) -> None:
        self.engine = engine
        self.workers = max(1, workers)
        self.recycle_after = recycle_after
        self._executor: ProcessPoolExecutor | ThreadPoolExecutor | None = None
        self._pages_on_executor = 0
        self._lock = asyncio.Lock()

    def _new_executor(self) -> ProcessPoolExecutor | ThreadPoolExecutor:
        if self.engine == "fast":
            # Each thread gets its own engine via the same initializer (one instance per worker).
            return ThreadPoolExecutor(max_workers=self.workers, initializer=_init_worker, initargs=(self.engine,))
        ctx = multiprocessing.get_context("spawn")  # no forked copies of the event loop or sockets
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx,
                                   initializer=_init_worker, initargs=(self.engine,))

    async def start(self) -> None:
        if self.engine not in ENGINE_NAMES:
            raise ValueError(f"unknown OCR engine {self.engine!r}; choose one of {', '.join(ENGINE_NAMES)}")
        self._executor = self._new_executor()

    async def _executor_for_next_page(self) -> ProcessPoolExecutor | ThreadPoolExecutor:
        async with self._lock:
            if self._executor is None:
                await self.start()
            elif self.engine != "fast" and self._pages_on_executor >= self.recycle_after:
                old, self._executor = self._executor, self._new_executor()
                self._pages_on_executor = 0
                old.shutdown(wait=False)
            self._pages_on_executor += 1
            assert self._executor is not None
            return self._executor

    async def recognize(self, image_bytes: bytes, language: str | None = None) -> OcrPage:
        executor = await self._executor_for_next_page()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, _recognize_in_worker, image_bytes, language)
        except BrokenProcessPool as exc:
            async with self._lock:  # replace the dead pool so later jobs still run
                if self._executor is executor:
                    self._executor = self._new_executor()
                    self._pages_on_executor = 0
            raise EngineError("OCR worker process died (crash or out of memory)", code="WORKER_TIMEOUT") from exc

    async def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
