"""Word positions for text-only answers, computed off the event loop in a bounded process pool.

Why processes: reading a page cheaply and matching the answer's words to it by text
(``ocr/readwords.py``, ``ocr/textmatch.py``; or the width-only methods, ``ocr/inkgeom.py`` and
``ocr/align.py``) is CPU work (about 0.8 CPU-second an A4 page by default, 0.5 with ``mix``),
which would stall the event loop that keeps uploads and polls moving; threads would hold the
GIL for most of it.
``geometry.workers`` processes (config) take the pages in turn; the pool starts on the first
page that needs it, so a run with boxes in its answers (or without ALTO/hOCR/PDF) never starts
one.

``needs_placement`` says which pages want it: ALTO, hOCR or PDF configured, an OCR page (not a
PDF text-layer page) whose answer carries no line boxes. Pages whose answer has boxes keep them.

A placement that fails (an odd page, a worker killed by the kernel's OOM killer) costs the page
its positions, not the run: it is recorded in the ``.json`` with its ``error``, named in the run
report's ``output_notes`` (``placement_notes``), and tried again whenever the file's ALTO, hOCR or
PDF are written again from the stored ``.json`` (delete them, ``verify --requeue``, run: no API call).
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Sequence

from pipeline.formats import NEEDS_BOXES
from pipeline.formats.model import has_positions
from pipeline.inputs.pages import PageFailed
from pipeline.inputs.prepare import PrecheckLimits, PreparedPage, RejectedInput
from pipeline.run.crashpoints import crashpoint


def needs_placement(outputs: Sequence[str], text_source: str, structured: Any, text: str) -> bool:
    return (any(n in NEEDS_BOXES for n in outputs) and text_source != "text_layer"
            and not has_positions(structured) and bool(text.strip()))


def failed_placement(placed: Any) -> bool:
    """A page's ``placed`` record says its placement failed (it is tried again)."""
    return isinstance(placed, dict) and bool(placed.get("error"))


def placement_notes(document: dict, names: Sequence[str]) -> list[str]:
    """For the run report: each page of ``document`` whose words could not be placed, when
    ``names`` (the outputs being written) include one that needs positions."""
    if not any(n in NEEDS_BOXES for n in names):
        return []
    return [f"page {int(page.get('index', 0)) + 1}: its words could not be placed ({page['placed']['error']}); "
            f"ALTO, hOCR and PDF carry its text without positions (to try again, no API call: delete "
            f"them, run `pipeline verify --requeue`, then run)"
            for page in document.get("pages") or [] if failed_placement(page.get("placed"))]


def _place_in_worker(data: bytes, text: str, method: str, language: str | None) -> dict[str, Any]:
    from pipeline.ocr.placement import place_upload  # numpy and OpenCV: loaded in the worker

    crashpoint("in_placement")   # tests: a worker killed mid-page (PIPELINE_CRASHPOINT)
    return place_upload(data, text, method, language)


def _init_worker() -> None:
    """A Ctrl-C at a terminal reaches the whole process group: the parent owns shutdown, so a
    geometry worker must not die of it mid-page; but it must not outlive a parent killed
    outright either (both as the engine workers, ``ocr/pool.py``)."""
    from pipeline.ocr.pool import owned_by_parent

    owned_by_parent()


class Placer:
    """``await placer.place(upload_bytes, text, language)`` -> the page's ``placed`` record."""

    def __init__(self, workers: int = 1, method: str = "read") -> None:
        self.workers = max(1, workers)
        self.method = method
        self._executor: ProcessPoolExecutor | None = None
        self.failures = 0   # pages whose placement failed (the page is then written text-only)

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(max_workers=self.workers, initializer=_init_worker,
                                                 mp_context=multiprocessing.get_context("spawn"))
        return self._executor

    async def place(self, data: bytes, text: str, language: str | None = "en") -> dict[str, Any]:
        """The page's record; when placement fails, one that says why (the page is then
        written without positions, as for any answer without boxes). ``language``: the file's
        ``api.language``, which the recognition pass of ``read`` reads with."""
        from pipeline.ocr.pool import run_in_worker  # as _init_worker: the client loads no engine code up front

        loop = asyncio.get_running_loop()
        try:
            return await run_in_worker(loop, self._pool(), _place_in_worker, data, text, self.method, language)
        except BrokenProcessPool:
            self._executor = None  # a dead worker costs this page its positions, not the run
            reason = "the geometry worker process died (crash or out of memory)"
        except Exception as exc:  # noqa: BLE001 - an undecodable or odd page: written without positions
            reason = f"{type(exc).__name__}: {exc}"
        self.failures += 1
        return {"method": self.method, "words": len(text.split()), "placed": 0, "error": reason, "blocks": []}

    def close(self, stopped: bool = False) -> None:
        """Reap the workers. ``stopped``: the run was stopped, so a page still being placed belongs
        to a file it gave up (parked after the grace, or a second signal): its worker is killed,
        not waited for (on a loaded machine a placement takes seconds; a stop waited for it after
        writing its report)."""
        from pipeline.ocr.pool import pool_processes

        executor, self._executor = self._executor, None
        if executor is None:
            return
        if stopped:
            for proc in pool_processes(executor):
                proc.kill()
        executor.shutdown(wait=True, cancel_futures=True)


async def place_missing(pages: list, outputs: Sequence[str], open_source, make_page, place) -> None:
    """Place the ``pages`` (``process.PageResult``) that need it and have no placement: their
    source is opened (``open_source()``), each page made again (``make_page(source, index)``)
    and placed (``place(data, page)``) only if it comes out the size that was sent."""
    missing = [p for p in pages if (p.placed is None or failed_placement(p.placed))
               and needs_placement(outputs, p.text_source, p.structured, p.text)]
    if not missing:
        return
    try:
        source = await open_source()
    except (RejectedInput, OSError, MemoryError):
        return
    try:
        for p in missing:
            try:
                item = await make_page(source, p.index)
            except PageFailed:
                continue
            if isinstance(item, PreparedPage) and (p.facts is None or (
                    p.facts.get("width"), p.facts.get("height")) == (item.width, item.height)):
                p.placed = await place(item.data, p)
    finally:
        source.close()


def limits_for_regeneration(precheck: Any) -> PrecheckLimits:
    """The pre-check limits from the config alone (regeneration makes no start-up checks);
    a page that then comes out another size than was sent is left unplaced."""
    return PrecheckLimits(max_upload_bytes=precheck.max_upload_bytes, max_source_pixels=precheck.max_source_pixels,
                          jpeg_quality=precheck.jpeg_quality)


def document_pages(document: dict, page_result: Any) -> list:
    """A stored result's pages as ``page_result`` objects (``process.PageResult``), with facts."""
    facts = {f.get("page_index"): f for f in (document.get("image") or {}).get("pages") or [] if isinstance(f, dict)}
    return [page_result(int(p.get("index", 0)), str(p.get("text") or ""), p.get("result"), p.get("request_id"), 0,
                        text_source=p.get("text_source", "ocr"), placed=p.get("placed"),
                        facts=facts.get(int(p.get("index", 0))))
            for p in document.get("pages") or []]


def without_positions(outputs: Sequence[str], page: Any) -> bool:
    """Whether a page (``process.PageResult``) gets ``"positions": false`` in its ``.json``
    (docs/formats.md, "Pages without boxes"): ALTO, hOCR or PDF configured, an OCR page whose
    answer has no line boxes and none of whose words could be placed."""
    return (any(n in NEEDS_BOXES for n in outputs) and page.text_source != "text_layer"
            and not has_positions(page.structured) and not (page.placed or {}).get("placed"))


def record_placements(document: dict, pages: list, outputs: Sequence[str]) -> bool:
    """New placements into the stored result's pages, and each page's ``positions`` flag as a
    first run with ``outputs`` would have written it; True when the ``.json`` changed."""
    changed = False
    for doc_page, p in zip(document.get("pages") or [], pages):
        if p.placed and p.placed != doc_page.get("placed") and (
                not doc_page.get("placed") or failed_placement(doc_page["placed"])):
            doc_page["placed"] = p.placed   # new, or a failed one tried again
            changed = True
        if without_positions(outputs, p):
            changed |= doc_page.get("positions") is not False
            doc_page["positions"] = False
        elif "positions" in doc_page:
            doc_page.pop("positions")
            changed = True
    return changed
