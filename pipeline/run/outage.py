"""The run's circuit breaker: an API that went away mid-run stops the run (exit 6), not the files.

Why: the client retries each call (``retries.max_attempts``), then the file fails transiently
and the run takes the next one. When the API itself is gone (a server down, a gateway
answering 502/503 for hours, the network cut), that turns every remaining file of the tree into
a ``failed_transient`` at about one a second, the run exits 1 as if the files were at fault,
and each such night is a strike towards ``retries.max_transient_runs``: a few nights of outage
quarantined the whole tree.

How the two are told apart: every API call's final outcome (after the client's own retries) is
seen here. A call that ends in a transport error, a 5xx or a lost answer
(``API_SIDE``) is a failure of the API; any answer from it (2xx, and also a 4xx, a 404, a 429:
the API is there and speaking) is a success and ends the streak. The breaker opens when
``retries.outage_failures`` failures come in a row, with no success in between, over at least
``retries.outage_min_s`` seconds, over all calls or over the submit calls, the status calls or
the result downloads alone (see ``OutageBreaker``); failures before the API first answered are
the start-up check's (exit 6, "cannot be reached"), not an outage mid-run. A page the API
refuses (its 5xx) while other calls succeed breaks no streak's rule: the successes in between
reset it, and that file's failure counts as today. A brief blip (a few 5xx, then success) is
absorbed by the client's retries or ends the streak short of the threshold.

A streak whose every failure was an upload can also be a block of pages the API chokes on,
filling every job slot: before opening on it, one test page is uploaded (``RunProbe``,
``pipeline/run/probe.py``); taken, the streak ends and the pages take their strikes; not taken,
the breaker opens; no verdict because the run stopped first (``undecided``), the stop keeps its
exit code and the streak's files take no strike.

What opening does: the run stops as for a signal (no new files, in-flight jobs polled for
``shutdown_grace_s``, request ids kept), and files whose attempt failed on the API during the
streak, or after it opened, are put back to ``pending`` without a strike (``forgive``): the
next run takes them again as if this one had not reached them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from pipeline.deapi import errors as api_errors
from pipeline.run.state import StateStore

ANY = "*"   # the streak over every call, whatever its endpoint
# the endpoints with a streak of their own: a failure there fails the file (a price quote that
# fails is only not known, so a price route gone must not stop a run that uploads and polls well);
# "download" is the result links' storage, which may be another host than the API's
OWN_STREAK = ("submit", "status", "download")
CALLS_OF = {"download": "result downloads"}   # the stop reason's words for an endpoint's calls

NOT_COUNTED = "not counted as a failed run: the API went away mid-run"
# ... and when the run stopped while the streak's test page was out (no verdict, see OutageBreaker.undecided)
NOT_DECIDED = "not counted as a failed run: the run stopped before its test page told an outage from pages the API refuses"

API_SIDE = (api_errors.TransportError, api_errors.ServerError, api_errors.SubmitOutcomeUnknown)


def forgive(state: StateStore, rel: str, reason: str, failures: int | None = None, why: str = NOT_COUNTED) -> None:
    """``rel``'s failure taken back: ``pending``, no strike, its error starting with ``why``
    (``status`` counts the outage's by ``NOT_COUNTED``; a stop before a test page's verdict
    says ``NOT_DECIDED``)."""
    state.forgive_failure(rel, f"{why}: {reason}", failures)


def calls_of(key: str) -> str:
    """The stop reason's words for a streak's calls: all of them, or one endpoint's."""
    return "calls" if key == ANY else CALLS_OF.get(key, f"{key} calls")


def api_side(exc: BaseException) -> bool:
    """A failure of the API as a whole (nothing answered, a 5xx, an answer lost), not of a file."""
    return isinstance(exc, API_SIDE)


@dataclass
class Suspect:
    rel: str
    failures: int          # the file's failed runs before this run's strike (given back on a trip)
    reason: str            # why its attempt failed


@dataclass
class _Streak:
    """One endpoint's failures in a row (after their retries), since its last answer."""

    count: int = 0
    first: float | None = None     # when its first failure ended
    since: int = 0                 # the file failures recorded before it began (later ones are its suspects)
    probed: bool = False           # a test page was sent for it: its next verdict is final


@dataclass
class OutageBreaker:
    """Counts API failures in a row, over all calls and per endpoint; ``on_trip(reason,
    suspects)`` is called once when either streak opens it.

    Why per endpoint too: an API whose status endpoint fails while uploads are still taken (a
    broken route, a read replica gone) answers every new file's submit, and one streak over all
    calls was ended by each of them: every file was paid, failed on its polls and took a strike,
    and the breaker never opened (40 files, the status route answering 5xx: 36 quarantined with
    ``max_transient_runs: 1``). An answer ends the streak over all calls and its own endpoint's;
    the one over all calls still opens as soon as before when every endpoint fails."""

    failures_to_trip: int                  # retries.outage_failures; 0: never trips
    min_s: float                           # retries.outage_min_s
    on_trip: Callable[[str, list[Suspect]], None] = lambda reason, suspects: None
    # called once when the run stops before a test page's verdict (``undecided``): the streak's files to give back
    on_undecided: Callable[[list[Suspect]], None] = lambda suspects: None
    clock: Callable[[], float] = time.monotonic
    longest: int = 0                       # the longest streak seen (the run report says it)
    reason: str | None = None              # why it opened; None while closed
    _streaks: dict[str, _Streak] = field(default_factory=dict)
    _last_error: str = ""
    _suspects: list[Suspect] = field(default_factory=list)
    _dropped: int = 0                      # suspects ever dropped from the list's front (their failures stand)
    _answered: bool = False                # the API has answered once: only then can it go away mid-run
    _next: asyncio.Event | None = None     # set at the next answer, or by wake(): uploads waiting to resend
    # Sends one page the API must take (``RunProbe``): True when the API answered it, False when it
    # failed it, None when it was not sent (the run stopping). None here: a streak of failed uploads
    # opens the breaker as it is.
    probe: Callable[[], Awaitable[bool | None]] | None = None
    probes: int = 0                        # test pages sent (each a paid job when taken)
    probes_taken: int = 0                  # ... that the API took while the streak's uploads failed
    taken_size: tuple[int, int] | None = None   # the last page the API took this run: the test page's size
    _probing: asyncio.Task | None = None
    _taken_at: float | None = None         # when the API last took a test page
    # The run stopped while a test page was out (or before it could go): a streak the breaker
    # would have opened on, with no verdict. Its files, and those failing on the API from here
    # on, are given back (``NOT_DECIDED``); the stop keeps its own exit code.
    undecided: bool = False

    @property
    def open(self) -> bool:
        return self.reason is not None

    @property
    def streak(self) -> int:
        """The longest streak running now, over the endpoints."""
        return max((s.count for s in self._streaks.values()), default=0)

    def observe(self, exc: BaseException | None, endpoint: str | None = None) -> None:
        """One API call's final outcome: ``None`` for an answer, else its error; ``endpoint``
        the call's ("submit", "status", ...; None for the rest)."""
        if exc is not None and not api_side(exc):
            if getattr(exc, "status", None) is None:
                return   # decided on this side (the run stopping, a local daily budget): says nothing
            exc = None   # a 4xx/429 answer: the API is there
        if exc is not None and not self._answered:
            return   # never reached: the start-up check says so (exit 6), not "went away mid-run"
        # every call's streak, and its endpoint's when a failure there fails the file
        keys = (ANY, endpoint) if endpoint in OWN_STREAK else (ANY,)
        if exc is None:
            self._answered = True
            self.wake()
            if not self.open and any([self._streaks.pop(key, None) for key in keys]):
                self._forget_old_suspects()
            return
        now = self.clock()
        self._last_error = getattr(exc, "reason", str(exc))
        for key in keys:
            run = self._streaks.get(key)
            if run is None:
                run = self._streaks[key] = _Streak(first=now, since=self._dropped + len(self._suspects))
            run.count += 1
            self.longest = max(self.longest, run.count)
        for key in keys:
            run = self._streaks[key]
            if (not self.open and self.failures_to_trip and run.count >= self.failures_to_trip
                    and now - run.first >= self.min_s):
                if self._probing is not None:
                    continue   # a test page is out: its answer decides
                uploads = self._streaks.get("submit")
                if uploads is not None and uploads.count >= run.count:   # every failure an upload's
                    if self.undecided:
                        continue   # the run stops with no verdict on them: the stop decides (exit 3 or 5)
                    if not uploads.probed and self._send_probe(uploads):
                        continue   # first, a test page
                self._trip(run, now, calls_of(key))

    def _send_probe(self, uploads: _Streak) -> bool:
        """Asks the API to take a test page before opening on a streak of failed uploads, the
        case a block of pages it chokes on looks like an outage (see ``RunProbe``); False when
        there is no probe (or no loop to send it from)."""
        if self.probe is None:
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        uploads.probed = True   # one test page a streak of failed uploads: the next verdict is final
        self.probes += 1
        self._probing = loop.create_task(self._await_probe(uploads))
        return True

    async def _await_probe(self, uploads: _Streak) -> None:
        """The test page's verdict. Taken: the API is there (its answer, seen by ``observe``,
        ended the streaks and woke the uploads waiting to resend: the pages that fail again take
        their strike). Not taken: the API is gone, and the breaker opens as it would have."""
        try:
            taken = await self.probe()
        except Exception:   # a bug of the probe's own must not hide an outage
            taken = False
        finally:
            self._probing = None
        if taken is None:   # not sent: the run is stopping anyway, and the stop decides (no outage)
            self._undecide()
            return
        if taken:
            self.probes_taken += 1
            self._taken_at = self.clock()
            self.wake()
        elif not self.open and self._streaks.get("submit") is uploads:
            self._trip(uploads, self.clock(), calls_of("submit"))

    async def settle(self, stopping: Callable[[], bool]) -> None:
        """The run's files are through: a test page still out is waited for, unless the run is
        stopping (checked every 0.2 s), then ``close()``.

        Why: a block of pages the API refuses at the end of the tree fails its last uploads
        while the test page is out, and with nothing left to do the run would end before its
        verdict: given back as ``undecided`` every night, such pages would never be struck."""
        while self._probing is not None and not stopping():
            await asyncio.wait({self._probing}, timeout=0.2)
        self.close()

    def close(self) -> None:
        """The run is over: a test page still out is not waited for (no verdict: ``undecided``)."""
        if self._probing is not None:
            self._probing.cancel()
            self._probing = None
            self._undecide()

    def _undecide(self) -> None:
        """The run stops with no verdict on a streak the breaker would have opened on before it
        had test pages. Why its files are given back: without the test page they were (the
        breaker opened), and a Ctrl-C while the test page is out (a slow API: each try waits
        for its timeout) says nothing about them; before, it left them struck, quarantined
        with ``max_transient_runs: 1``."""
        if self.open:
            return
        self.undecided = True
        suspects = self._take_suspects()
        if suspects:
            self.on_undecided(suspects)

    def _take_suspects(self) -> list[Suspect]:
        suspects, self._suspects = self._suspects, []
        self._dropped += len(suspects)
        return suspects

    async def next_answer(self, timeout_s: float) -> None:
        """Return once some API call is answered, ``wake()`` is called (the run stops
        submitting), or ``timeout_s`` has passed; whichever comes first.

        Why: an upload the API failed after its retries made no job, and a 5xx alone cannot
        tell a page the API chokes on from an API down for a minute. Waiting here for the API
        to answer something, then sending it once more (``FileProcessor._page_in_slot``), rides
        the outage without a strike and still strikes the page that fails again while the API
        answers the others. Within ``min_s`` of a test page the API took, there is nothing to
        wait for: the API is there, and the uploads failing are a block of pages it chokes on
        (sent once more at once, struck if they fail again; an outage that begins meanwhile
        still opens the breaker at the next test page, and gives those strikes back)."""
        if self._taken_at is not None and self.clock() - self._taken_at < self.min_s:
            return   # the API took a test page within the window: uploads failing now are the pages'
        if self._next is None:
            self._next = asyncio.Event()
        answered = asyncio.ensure_future(self._next.wait())
        try:
            done, _ = await asyncio.wait({answered}, timeout=timeout_s)
            if not done and self._probing is not None:   # a test page is out: its verdict first
                await asyncio.wait({answered, self._probing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            answered.cancel()

    def wake(self) -> None:
        """Ends every ``next_answer`` wait now."""
        if self._next is not None:
            self._next.set()
            self._next = None

    def _trip(self, run: _Streak, now: float, what: str) -> None:
        self.reason = (f"the API went away mid-run: {run.count} {what} in a row failed over "
                       f"{now - run.first:.0f}s with no answer in between (last: {self._last_error}); "
                       "the files not done wait for the next run, none counted as failed")
        # every file kept failed while some endpoint had not answered since (older ones are dropped)
        self.on_trip(self.reason, self._take_suspects())

    def _forget_old_suspects(self) -> None:
        """Files that failed before every streak still running began: their failures stand (the
        API answered on that endpoint meanwhile)."""
        keep_from = min((s.since for s in self._streaks.values()), default=self._dropped + len(self._suspects))
        cut = keep_from - self._dropped
        if cut > 0:
            del self._suspects[:cut]
            self._dropped += cut

    @property
    def gives_back(self) -> str | None:
        """Why a file failing on the API now takes no strike (its error's words), or None."""
        return NOT_COUNTED if self.open else NOT_DECIDED if self.undecided else None

    def file_failed(self, rel: str, failures_before: int, reason: str) -> None:
        """A file just failed on an API-side error and took a strike: given back if the breaker opens
        before the API answers again."""
        if self._streaks and self.failures_to_trip:   # off: nothing to give back, nothing kept
            self._suspects.append(Suspect(rel, failures_before, reason))

    def snapshot(self) -> dict:
        return {"outage": self.reason, "longest_failure_streak": self.longest,
                "failures_to_trip": self.failures_to_trip, "min_s": self.min_s,
                "probes": self.probes, "probes_taken": self.probes_taken}
