"""A page too tall for the model, read as strips: each strip a job of its own, paid once.

Why here and not in ``process``: the per-page way (intent, POST, request id, await) is already
crash-safe, so a strip goes through exactly that way (``FileProcessor._page``), under a *strip
work key* of its own: ``<work key>#p<page>h<limit>``, strip ``n`` as its page ``n``. A finer cut
of one refused strip ``n`` lives under ``<strip key>/s<n>h<limit>``. So:

* every strip's intent and request id are written ahead, like any page's; a crash at any moment
  pays for no strip twice, and a rerun re-attaches submitted strips and takes done ones as they
  are (a partly done page resumes with its missing strips only);
* a page read whole (its answer stored) or sent whole (its request id, or an unknown outcome) is
  taken or re-attached whole, never cut and paid again at a limit learned since;
* the cut is a pure function of the page's pixels and the limit, and a rerun takes the limit from
  the strip keys already begun for the page (``StateStore.strip_keys``), not from today's limit,
  so it cuts the same strips again, whatever was learned meanwhile; a strip of that cut never
  sent and taller than today's limit is cut finer under its own key, as a refused one is (sent
  as cut, it would only be refused: a job the caps count);
* once every strip is read, the page row gets the joined text (``stitch``) and is done as any page;
  its ``.json`` facts list the strips (their box on the upload, their rows in the source page,
  request ids).

The limit: ``api.max_input_height`` (per model, since a config names one model; unset, the limit
known for the model on the real service, ``KNOWN_HEIGHTS``), lowered by what refusals taught (``StateStore.learned_height``). A job refused with ``INPUT_TOO_LARGE`` or
``CONTEXT_LENGTH_EXCEEDED`` is counted (``refused_jobs`` in the run report), the learned limit is
set to ``LEARN_FACTOR`` times the refused image's height (we know only that it was too tall), and
that image alone is cut finer and retried; later pages are cut before they are sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from PIL import Image

from pipeline.inputs.encoding import encode_unscaled
from pipeline.inputs.prepare import PrecheckLimits, PreparedPage
from pipeline.run.crashpoints import crashpoint
from pipeline.run.failures import FileFailure
from pipeline.run.stitch import Piece, stitch

if TYPE_CHECKING:
    from pipeline.inputs.strips import Region


def plan_strips(image: Image.Image, limit: int) -> list[Region]:
    """``inputs.strips.plan_strips``, imported when a page is first too tall (it loads numpy,
    which a run of pages that fit never needs: start-up time, ``tests/test_startup.py``)."""
    from pipeline.inputs.strips import plan_strips as plan

    return plan(image, limit)

REFUSALS = ("INPUT_TOO_LARGE", "CONTEXT_LENGTH_EXCEEDED")
LEARN_FACTOR = 0.75   # a refused image of height h: the limit becomes 0.75 h (five refusals from 3508 to 850)
MIN_HEIGHT = 127      # the API's smallest image height: a strip is padded up to it, never cut below it
MIN_WIDTH = 128


@dataclass
class StripStats:
    """What the run report says about strips (``api_calls.strips``)."""

    pages_cut: int = 0
    strips: int = 0              # strips read this run (submitted, re-attached or taken as done)
    refused_jobs: int = 0        # jobs the API refused as too large (each refunded, each re-cut)
    learned_height: int | None = None
    limit_used: int | None = None  # the lowest limit a page was cut at this run
    refusals: list[dict] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        return {"pages_cut": self.pages_cut, "strips": self.strips, "refused_jobs": self.refused_jobs,
                "learned_max_input_height": self.learned_height, "limit_used": self.limit_used, "refusals": self.refusals[:20]}


#: The height limits known of models of the real service, taken when ``api.max_input_height`` is
#: unset: Nanonets-OCR-s behind deAPI refuses images taller than about 850 px (a third party's
#: measurement, October 2026, which cuts at 800: ../shared/deapi-api.md §2.3, §8). Learning it from
#: refusals instead costs a refused job for every page in flight and lands at 0.75 times the
#: height refused, 638-850 px: up to a third more strips, paid, on every later page.
KNOWN_HEIGHTS = {("api.deapi.ai", "Nanonets_Ocr_S_F16"): 800}


def known_height(config: Any) -> int | None:
    """The limit known for the configured model on the configured service, if any."""
    return KNOWN_HEIGHTS.get((urlsplit(str(config.api.base_url)).hostname or "", config.api.model))


def current_limit(config: Any, state: Any, upload_height: int | None = None) -> int | None:
    """The tallest image to send: the configured limit (else the one known for the model on the
    real service), lowered by what refusals taught, and never over ``upload_height``, the model's
    own ``max_height`` (``/models``): ``prepare`` keeps a taller page at its scale to be cut here."""
    configured = config.api.max_input_height or known_height(config)
    learned = state.learned_height(config.api.model)
    known = [h for h in (configured, learned, upload_height) if h]
    return min(known) if known else None


def finer(height: int, limit: int | None) -> int:
    return max(MIN_HEIGHT, int(min(height, limit or height) * LEARN_FACTOR))


def finer_limit(height: int, cut_limit: int, limit_now: int | None) -> int:
    """The limit a strip of ``height`` px, of a cut made at ``cut_limit``, is cut finer at: the
    lower of the limit known now and the next step down. The run (``StripReader._finer``) and
    ``plan`` (``_finer_sizes``) cut alike."""
    return min(limit_now or height, finer(height, cut_limit))


def cannot_cut_finer(sub: int, height: int) -> bool:
    """Whether a strip of ``height`` px cut at ``sub`` stays whole: the file then fails."""
    return sub >= height or height <= MIN_HEIGHT


def strip_upload(image: Image.Image, region: Region, page: PreparedPage, index: int,
                 max_bytes: int = PrecheckLimits.max_upload_bytes,
                 quality: int = PrecheckLimits.jpeg_quality) -> PreparedPage:
    """One strip as an upload: the region's pixels as PNG (lossless; a JPEG page is not re-compressed
    twice) or, when that is over ``max_bytes`` (a colour photograph), JPEG from ``quality`` down
    (``prepare.encode_unscaled``: never shrunk), padded with white at the right/bottom to the API's
    minimum size (moves no coordinate)."""
    crop = image.crop((region.x0, region.y0, region.x1, region.y1))
    if crop.width < MIN_WIDTH or crop.height < MIN_HEIGHT:
        padded = Image.new(crop.mode, (max(crop.width, MIN_WIDTH), max(crop.height, MIN_HEIGHT)),
                           255 if crop.mode in ("L", "1") else (255,) * len(crop.getbands()))
        padded.paste(crop, (0, 0))
        crop = padded
    data, fmt, jpeg_quality = encode_unscaled(crop, max_bytes, quality)
    stem = page.filename.rsplit(".", 1)[0]
    transforms = (f"strip:{region.x0},{region.y0},{region.x1},{region.y1}",) + (
        (f"jpeg_quality:{jpeg_quality}",) if jpeg_quality else ())
    ext, content_type = (".png", "image/png") if fmt == "PNG" else (".jpg", "image/jpeg")
    return PreparedPage(data=data, filename=f"{stem}-s{index + 1:02d}{ext}", content_type=content_type,
                        format=fmt, width=crop.width, height=crop.height, page_index=index,
                        scale=page.scale, transforms=transforms,
                        sha256=hashlib.sha256(data).hexdigest(), source=page.source)


def decode(page: PreparedPage) -> Image.Image:
    image = Image.open(io.BytesIO(page.data))
    image.load()
    if image.mode not in ("1", "L", "RGB"):
        image = image.convert("RGB")
    return image


def strip_sizes(page: PreparedPage, limit: int | None) -> list[tuple[int, int]]:
    """What ``plan`` prices: the uploads this page becomes at ``limit`` (itself when it fits)."""
    if not limit or page.height <= limit:
        return [(page.width, page.height)]
    with decode(page) as image:
        return [(max(r.width, MIN_WIDTH), max(r.height, MIN_HEIGHT)) for r in plan_strips(image, limit)]


def uploads_left(state: Any, work_key: str, page: PreparedPage, limit: int | None) -> tuple[list[tuple[int, int]], int]:
    """What ``plan`` prices for a page not yet done, and how many strip jobs an earlier run left
    to collect: a page whose strips were begun resumes with the cut it began with (as
    ``StripReader`` does), so its done strips cost nothing and its submitted ones are collected."""
    begun = state.strip_keys(f"{work_key}#p{page.page_index}h")
    kept = state.cut_plan(begun[0]) if begun else None
    if kept is None:
        return strip_sizes(page, limit), 0
    return _left_in(state, begun[0], kept, page, limit)


def _left_in(state: Any, key: str, kept: list[list[int]], page: PreparedPage,
             limit: int | None) -> tuple[list[tuple[int, int]], int]:
    stored = state.get_pages(key)
    sizes: list[tuple[int, int]] = []
    collect = 0
    for n, (x0, y0, x1, y1, *_overlap_paragraph) in enumerate(kept):
        finer_keys = state.strip_keys(f"{key}/s{n}h")
        finer_kept = state.cut_plan(finer_keys[0]) if finer_keys else None
        rec = stored.get(n)
        if finer_kept is not None:          # this strip was refused and cut finer
            more, more_collect = _left_in(state, finer_keys[0], finer_kept, page, limit)
            sizes += more
            collect += more_collect
        elif rec is not None and rec.state == "done":
            continue
        elif rec is not None and rec.state == "submitted" and rec.request_id:
            collect += 1
        elif ((rec is not None and rec.state == "failed" and rec.error_code in REFUSALS)
              or (rec is None and too_tall(y1 - y0, limit))):
            sizes += _finer_sizes(page, (x0, y0, x1, y1), int(key.rsplit("h", 1)[1]), limit)
        else:
            sizes.append((max(x1 - x0, MIN_WIDTH), max(y1 - y0, MIN_HEIGHT)))
    return sizes, collect


def too_tall(height: int, limit: int | None) -> bool:
    """Whether a strip of a kept cut, never sent, is taller than the limit known now (learned or
    set since the cut was made): it is cut finer before it is sent, as a refused strip is, rather
    than sent to be refused (a job counted against the caps for nothing)."""
    return limit is not None and height > limit


def _finer_sizes(page: PreparedPage, box: tuple[int, int, int, int], cut_limit: int,
                 limit: int | None) -> list[tuple[int, int]]:
    """The uploads a strip cut finer becomes, as ``StripReader._finer`` cuts it: none when it cannot
    be cut finer (the run fails the file, sending nothing more)."""
    height = box[3] - box[1]
    sub = finer_limit(height, cut_limit, limit)
    if cannot_cut_finer(sub, height):
        return []
    with decode(page) as image, image.crop(box) as crop:
        return [(max(r.width, MIN_WIDTH), max(r.height, MIN_HEIGHT)) for r in plan_strips(crop, sub)]


class StripReader:
    """Reads one page: whole when it fits the limit, else (or once refused) in strips."""

    def __init__(self, processor: Any, entry: Any, key: str, page: PreparedPage) -> None:
        self.proc, self.entry, self.key, self.page = processor, entry, key, page
        self.ctx = processor.ctx
        self.state = processor.ctx.state
        self.stats: StripStats = processor.ctx.strips
        self._image: Image.Image | None = None
        self._limits: PrecheckLimits | None = None   # the model's upload limits, read once in ``read``
        # the page's refused uploads, this run's and those a stored row records from an earlier
        # one: each was a job submitted (and counted in ``submits``) though no strip came of it
        self._refusals: list[dict[str, Any]] = []

    async def read(self, stored: Any) -> Any:
        from pipeline.run.process import PageResult   # the caller's type (no import circle)

        page, state = self.page, self.state
        force = self.ctx.force   # --force redoes the strips too
        begun = [] if force else state.strip_keys(f"{self.key}#p{page.page_index}h")
        refused = self._refused_before(stored, page.height)
        if refused:   # recorded by a run stopped before it learned from it: learned now (only lowers)
            self._learn(finer(page.height, None))
        self._limits = limits = await self.ctx.api_ready()
        limit = current_limit(self.ctx.config, state, limits.max_height)
        # a page already sent whole (read: its answer stored; request id recorded; or its POST's
        # outcome unknown) is taken or re-attached whole, never cut and paid again, whatever the
        # limit is now (a page read whole whose facts a kill or a stop kept from being recorded
        # was cut at a limit learned since, and every strip paid again)
        sent_whole = stored is not None and (stored.state in ("submitted", "submitting")
                                             or (stored.state == "done" and stored.result_text is not None))
        if not begun and not refused and (limit is None or page.height <= limit or sent_whole):
            try:
                return await self.proc._page(self.entry, self.key, page, stored)
            except FileFailure as exc:
                if exc.code not in REFUSALS:
                    raise
                self._refused(page.height, exc.code, None)
                refused = True
        if begun:
            strip_key = begun[0]
            limit = int(strip_key.rsplit("h", 1)[1])
        else:
            if refused:   # the whole page was too tall: that says nothing of a limit set since it was sent
                limit = min(current_limit(self.ctx.config, state, limits.max_height) or page.height,
                            finer(page.height, None))
            strip_key = f"{self.key}#p{page.page_index}h{limit}"
        try:
            self._image = await asyncio.to_thread(decode, page)
            regions = await self._plan(strip_key, self._image, limit)
            pieces = await self._read_regions(strip_key, regions, limit)
            text, structured = await asyncio.to_thread(stitch, pieces, page.width, page.height)
        finally:
            if self._image is not None:
                self._image.close()
        state.page_cut_done(self.key, page.page_index, text, structured)
        self.stats.pages_cut += 1
        self.stats.limit_used = min(limit, self.stats.limit_used or limit)
        scale = page.scale or 1.0
        for rec in (p.record for p in pieces if p.record is not None):
            x0, y0, x1, y1 = rec["box"]
            rec["source_y"] = [round(y0 / scale, 2), round(y1 / scale, 2)]
        records = [p.record for p in pieces if p.record is not None]
        facts = {"strips": records, "strip_limit": limit, **({"refused": self._refusals} if self._refusals else {})}
        submits = sum(r["submits"] for r in records) + len(self._refusals)
        return PageResult(page.page_index, text, structured, None, submits, facts=facts)

    async def _read_regions(self, key: str, regions: list[Region], limit: int) -> list[Piece]:
        """Every region's answer, in order; a refused one cut finer under a key of its own."""
        from pipeline.run.context import StopSubmitting   # (context holds StripStats: no import circle)

        stored = {} if self.ctx.force else self.state.get_pages(key)
        results = await asyncio.gather(*(self._region(key, n, r, stored.get(n), limit)
                                         for n, r in enumerate(regions)), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        for r in sorted(failed, key=lambda e: not isinstance(e, (StopSubmitting, asyncio.CancelledError))):
            raise r   # a stop first (the page is deferred), else the first failure
        return [piece for part in results for piece in part]   # type: ignore[union-attr]

    async def _region(self, key: str, n: int, region: Region, stored: Any, limit: int) -> list[Piece]:

        sub_begun = [] if self.ctx.force else self.state.strip_keys(f"{key}/s{n}h")
        refused = self._refused_before(stored, region.height)
        limits = self._limits
        assert limits is not None   # set by ``read``, the only way here
        if sub_begun or refused or (stored is None and too_tall(region.height, current_limit(
                self.ctx.config, self.state, limits.max_height))):
            return await self._finer(key, n, region, sub_begun, limit, stored.error_code if stored else None)
        upload = await asyncio.to_thread(strip_upload, self._image, region, self.page, n,
                                         limits.max_upload_bytes, limits.jpeg_quality)
        try:
            result = await self.proc._page(self.entry, key, upload, stored)
        except FileFailure as exc:
            if exc.code not in REFUSALS:
                raise
            self._refused(upload.height, exc.code, limit)
            return await self._finer(key, n, region, [], limit, exc.code)
        self.stats.strips += 1
        record = {"box": [region.x0, region.y0, region.x1, region.y1],
                  **({"overlap": region.overlap} if region.overlap else {}),
                  "request_id": result.request_id, "submits": result.submits,
                  "width": upload.width, "height": upload.height}
        return [Piece(region, result.text, result.structured, record)]

    async def _finer(self, key: str, n: int, region: Region, begun: list[str], limit: int,
                     code: str | None) -> list[Piece]:

        if begun:
            sub_key = begun[0]
            sub = int(sub_key.rsplit("h", 1)[1])
        else:
            sub = finer_limit(region.height, limit, current_limit(self.ctx.config, self.state))
            sub_key = f"{key}/s{n}h{sub}"
        self.stats.limit_used = min(sub, self.stats.limit_used or sub)
        if cannot_cut_finer(sub, region.height):
            raise FileFailure("failed_permanent", "permanent",
                              f"the model refused a strip of {region.height} px ({code or 'INPUT_TOO_LARGE'}), and "
                              f"it cannot be cut finer than {MIN_HEIGHT} px: see docs/client.md, pages too tall",
                              code or "INPUT_TOO_LARGE")
        return await self._read_regions(sub_key, await self._plan(sub_key, self._image, sub, region), sub)

    async def _plan(self, key: str, image: Image.Image, limit: int, within: Any = None) -> list[Any]:
        """The cut of the page (or of the refused strip ``within``) under ``key``: the one kept
        when the key was begun, else planned now and kept before any strip is sent."""
        from pipeline.inputs.strips import Region

        kept = None if self.ctx.force else self.state.cut_plan(key)   # --force cuts afresh
        if kept is not None:
            return [Region.from_row(row) for row in kept]
        if within is None:
            regions = await asyncio.to_thread(plan_strips, image, limit)
        else:
            crop = image.crop((within.x0, within.y0, within.x1, within.y1))
            subs = await asyncio.to_thread(plan_strips, crop, limit)
            regions = [Region(within.x0 + r.x0, within.y0 + r.y0, within.x0 + r.x1, within.y0 + r.y1,
                              r.overlap if r.y0 > 0 else within.overlap,
                              r.paragraph if r.y0 > 0 else within.paragraph) for r in subs]
        self.state.keep_cut_plan(key, [r.row() for r in regions])
        crashpoint("cut_kept")   # tests: a cut kept, none of its strips' intents written yet
        return regions

    def _learn(self, height: int) -> None:
        """Lower the model's learned limit to ``height`` (kept in the state store; never raised)."""
        self.state.learn_height(self.ctx.config.api.model, height)
        self.stats.learned_height = self.state.learned_height(self.ctx.config.api.model)

    def _refused_before(self, stored: Any, height: int) -> bool:
        """Whether ``stored`` (an upload's row) says the model refused it, in an earlier run: a
        job submitted, so it goes into the page's refusals as this run's own do (``_refused``)."""
        if stored is None or stored.state != "failed" or stored.error_code not in REFUSALS:
            return False
        self._refusals.append({"height": height, "code": stored.error_code})
        return True

    def _refused(self, height: int, code: str, limit: int | None) -> None:
        crashpoint("refused")   # the refusal is on the page's row, the limit not yet learned from it
        self._learn(finer(height, limit))
        self.stats.refused_jobs += 1
        self._refusals.append({"height": height, "code": code})
        self.stats.refusals.append({"path": self.entry.rel, "page": self.page.page_index, "height": height,
                                    "code": code})
