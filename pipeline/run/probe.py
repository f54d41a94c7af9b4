"""The outage breaker's test page: is the API gone, or are these pages ones it chokes on?

Why: a run of uploads that fail on the API side (5xx, nothing answered) with no answer in
between looks the same whether the API is down or the files in the job slots are pages the API
chokes on, when enough of them come together in walk order to fill every slot for
``retries.outage_min_s``. Taken for an outage, such a block stopped the run at the same place
every night (exit 6), its files never struck and never quarantined, and the files after it were
reached only beside it. Before the breaker opens on a streak of failed uploads
(``OutageBreaker._send_probe``), this module uploads one page the API must take: a plain page of
printed words, the size of the last page the API took in this run (so an API that now fails
every page of that size fails the test page too). Taken, the API is there: the streak ends, the
uploads waiting to be sent once more go (``FileProcessor._page_in_slot``), and those that fail
again take their strike as any page the API refuses. Not taken, the breaker opens as before.

Why not a free call (the models list, a submit the API must refuse with 422): both are
answered by an API whose uploads all fail behind its front door (its storage or its job queue
gone), and taking that for a block of bad pages would strike, then quarantine, the whole tree.
Only an upload proves uploads are taken. The test page is a paid job (at most one a streak,
admitted and counted by the run's budget like a page; the run report's ``api_calls.outage``
counts them), and it is never polled: its answer is not wanted.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

from PIL import Image, ImageDraw, ImageFont

from pipeline.deapi import errors as api_errors
from pipeline.run.context import RunContext, StopSubmitting

DEFAULT_SIZE = (1240, 800)   # no page taken yet this run: a page of A4's width at 150 dpi, under the hosted model's 850 px
LINE = "The API took this test page: the pages whose uploads failed are the API's to refuse."


def probe_page(width: int, height: int) -> bytes:
    """A white page of ``width`` x ``height`` with three lines of printed words, as PNG."""
    im = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(im)
    size = max(10, min(height // 12, width // 40))
    font = ImageFont.load_default(size=size)
    for row in range(3):   # three lines: the hosted model is priced by the characters it answers
        draw.text((size, size * (1 + 2 * row)), LINE, fill=0, font=font)
    out = io.BytesIO()
    im.save(out, "PNG", optimize=True)
    return out.getvalue()


@dataclass
class RunProbe:
    """``OutageBreaker.probe`` for one run: sends the test page through the run's client."""

    ctx: RunContext
    say: Callable[[str], None] = lambda message: None

    async def __call__(self) -> bool | None:
        """True: the API took the test page; False: it failed it; None: not sent, the run is
        stopping (a signal, or the budget would not pay for it: the run stops submitting)."""
        ctx = self.ctx

        def closed() -> bool:
            return bool(ctx.stopping() or ctx.submissions_closed or ctx.fatal)

        def before_send(attempt: int) -> None:   # a stop while it waited for the rate limiter
            if closed():
                raise api_errors.SubmissionsShut("not sent: the run is stopping")

        if closed():
            return None
        width, height = (ctx.outage.taken_size if ctx.outage is not None else None) or self._default_size()
        data = probe_page(width, height)
        cost = None
        if ctx.pricing is not None:
            try:
                cost = await ctx.pricing.quote(width, height)
            except api_errors.DeapiError:
                cost = None
        try:
            ctx.admit(cost)
        except StopSubmitting:
            # A cap or the balance stops the run's uploads as it would at a page's (exit 3 or 5),
            # which decides; before, the breaker opened on it, calling a spent budget an outage.
            return None
        api = ctx.config.api
        try:
            await ctx.api.submit_ocr(data, "outage-test-page.png", "image/png", model=api.model,
                                     language=api.language, format=api.format,
                                     return_result_in_response=api.return_result_in_response,
                                     before_send=before_send)
        except api_errors.SubmitOutcomeUnknown:
            if ctx.budget is not None:
                ctx.budget.commit(cost)   # the job may exist and be charged
            return False
        except api_errors.DeapiError as exc:
            if ctx.budget is not None:
                ctx.budget.release(cost)
            if getattr(exc, "status", None) is None and closed():
                return None
            # an answer that is not a 5xx (a 4xx, a 429) is the API there and speaking
            return getattr(exc, "status", None) is not None and not api_errors.api_failure(exc)
        except BaseException:
            if ctx.budget is not None:
                ctx.budget.release(cost)
            raise
        if ctx.budget is not None:
            ctx.budget.commit(cost)
        self.say(f"pipeline: uploads failed on the API with no answer in between, but it took a test page "
                 f"({width}x{height}): {LINE.split(': ', 1)[1].rstrip('.')}, and count as failed (not an outage)")
        return True

    def _default_size(self) -> tuple[int, int]:
        width, height = DEFAULT_SIZE
        limit = self.ctx.config.api.max_input_height
        return width, min(height, limit) if limit else height
