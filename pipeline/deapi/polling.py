"""When to ask ``request-status``: a poll schedule planned from the job times the API showed us.

Why planning and not a fixed backoff: status calls are budgeted like submits (Basic: 200 a day
against 50 submits, so four a job; premium: 300 a minute, as many as submits), and a result
seen late holds a job slot idle. Job times vary with the content of a page and with queueing at
the API, tenfold within one run. A fixed interval wastes calls on slow jobs and time on fast
ones; a delay learnt as one percentile (the old learner) waits for the slowest tenth of jobs
before it asks about any of them.

What a poll tells us is an interval: the job finished after the last poll that said "not yet"
(``lo``) and before the poll that said "done" (``hi``). From the last ``window`` such intervals

1. **the distribution of job times** is estimated by Turnbull's self-consistency algorithm (the
   maximum-likelihood estimate for interval-censored data), on the grid of the observed interval
   ends;
2. **the schedule** (times after the submit at which to poll) is the one that minimises
   ``expected lateness + lambda * expected polls`` on that distribution, by dynamic programming
   over the grid (Barlow-Proschan's inspection problem). ``lambda`` is chosen so that the
   expected lateness is at most ``lateness_share`` (5 %) of the mean job time with as few polls
   as possible, but never more polls than ``budget`` a job: the plan's status budget over its
   submit budget, or ``polling.status_calls_per_job``; with neither (no status limits), what a
   naive poller asking every ``gap_floor`` (1 s) would spend on the same jobs, x ``NAIVE_SLACK``
   (``naive_polls``). A fixed default (it was 4) was spent whole wherever the 5 % target was out
   of reach, which it mostly is: 2 s +- 50 % jobs cost 6-7 calls where a 1 s poller spends 3.6.

Two more sources of information:

* **Exploration.** A first poll that always finds the job done says only "done by then": the
  lower part of the distribution would never be seen. So one job in twenty gets one extra poll
  at a random point before its first planned poll; its answer narrows the estimate. When most
  first polls miss (the first poll lies below the job times), the probe goes between the first
  two polls instead, where the jobs end.
* **Order.** Jobs submitted together tend to finish in submission order (a queue at the API).
  When a job is seen done, jobs submitted before it that are still waiting are asked at once.
  Whether this pays is measured: the hint is used while at least half of such early polls find
  their job done, and switched off (then tried again later) when they do not.

When the planned polls are spent (a job slower than any recent one), polls back off by
``backoff`` from the last planned gap up to ``maximum``; because the plan follows the recent
jobs, the delay can not run away to the maximum while jobs keep finishing. Lateness (time from
a job's estimated end to the poll that saw it) is estimated for every job and reported.

**No long tail.** An optimal plan for the recent jobs may still end in a long gap: the jobs
past its last cells are few, so waiting long for them is cheap *on average* (one plan ended
``[..., 3.0, 63.2]`` s, and 3 of 6 runs of 2 s ± 50 % jobs saw their last job 17-41 s late).
So every gap after the first poll is bounded by ``gap_share`` (25 %) of the time since the
submit or ``gap_floor`` (1 s), whichever is longer: a poll at ``t`` is followed by one by
``t + max(gap_floor, minimum, 0.25 t)`` at the latest, in the plan (the dynamic programme only
chooses among such gaps, ``bounded`` inserts polls where the grid left a longer one) and after
it (``after_plan``). A job of ``T`` seconds is therefore answered at most ``max(0.25 T, 1 s)``
late once its first poll has passed (a job done before its first poll waits for that poll,
which the plan puts where few jobs are done, or, when job times have a floor, by the same bound
from the floor). The price is polls on slow jobs, about ``log(T / t0) / log(1.25)`` for a job
of ``T`` seconds first polled at ``t0``. Why the floor: a share alone asks young jobs for polls
closer than any naive poller's (every 0.2 s below 0.8 s), which made the planner dearer than a
1 s poller on short jobs (2 s +- 50 %: 7 calls a job against 3.6) for a promise nobody asked of
them; with it a naive 1 s schedule always lies within the bound, so the default budget (what
that poller spends) always pays the bound, and for the hosted model's 5-20 s jobs (25 % of 5 s
is 1.25 s) it never binds. ``gap_floor = 0`` is the share alone.

**When the status limit holds the polls back** (premium: one call a job at the submit rate),
they wait in the limiter, and there they queue by ``done_chance`` (the likeliest done first),
not by arrival: see ``RateLimiter.acquire``. **When job times change** (a queue filling), the
window forgets the jobs before the change (``_forget_before_a_shift``).
"""

from __future__ import annotations

import asyncio
import bisect
import math
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # numpy is imported where the learner first plans, not with the client
    import numpy as np


EXPLORE_RATE = 0.05        # share of jobs that get one extra, earlier probe poll
HINT_WINDOW = 64           # early polls judged when deciding whether order hints pay
HINT_MIN_PRECISION = 0.5
HINT_RETRY_AFTER = 256     # finished jobs before a switched-off hint is tried again
MAX_TRACKED = 100_000      # submit times kept for jobs not yet finished
MAX_GRID = 32              # cells of the estimated distribution
SUBDIVIDE = 3              # candidate poll times a cell (mass spread evenly inside it)
REPLAN_EVERY = 16          # new intervals before the plan is recomputed
REPLAN_MIN_S = 1.0         # ... and at most this often (a plan costs ~20 ms of CPU)
GAP_SHARE = 0.25           # no gap after the first poll beyond this share of the time since the submit ...
GAP_FLOOR = 1.0            # ... or beyond this many seconds, whichever is longer (a naive poller's spacing)
FLOOR_RATIO = 0.25         # job times have a floor (the first poll is bounded) when it is >= this x the median
FIRST_BOUND_MEMORY = 4     # plans whose job-time floors are pooled (the lowest is used)
NAIVE_SLACK = 1.1          # without status limits, a plan may spend this x what a naive poller would
MAX_SHARE = 16.0           # the widest a bound is widened for the status budget
SPAN = 0.3                 # ... estimated from the distribution function over this much probability above the first poll
SHIFT_RECENT = 16          # the last jobs compared with the window's older ones (a change of job times)
SHIFT_KS = 1.95            # ... Kolmogorov-Smirnov's critical value at 0.1 %
SHIFT_MIN = 0.25           # ... and their median moved by more than this share


@dataclass
class _Waiting:
    submitted: float
    wake: asyncio.Event | None = None
    last_miss: float = 0.0        # seconds after submit of the last poll that said "not yet"


class PollPlanner:
    def __init__(self, *, first: float = 1.0, minimum: float = 0.05, maximum: float = 30.0,
                 backoff: float = 1.5, budget: float | None = 4.0, lateness_share: float = 0.05,
                 window: int = 256, clock=time.monotonic, seed: int = 0,
                 gap_share: float | None = GAP_SHARE, gap_floor: float = GAP_FLOOR, widen: bool = True) -> None:
        self.first, self.minimum, self.maximum, self.backoff = first, minimum, maximum, backoff
        self.gap_share = gap_share   # None: no bound (the plan alone; benchmarks compare)
        self.share = gap_share       # the bound in use: gap_share, widened when the status budget cannot pay it
        self.gap_floor = max(0.0, gap_floor)  # a gap may always be this long (see the module doc)
        self.widen = widen           # False: the budget is a default, not a limit (no plan limits): never widen
        # None: no limit to the status calls; the plan may spend what a poller every ``gap_floor``
        # seconds (a naive one) would spend on the recent jobs, and spends it on less lateness.
        self.budget = None if budget is None else max(1.0, float(budget))
        self.budget_used: float | None = self.budget
        self.lateness_share = lateness_share
        self.clock = clock
        self.rng = random.Random(seed)
        self.intervals: deque[tuple[float, float]] = deque(maxlen=window)
        self._jobs: dict[str, _Waiting] = {}
        self._plan: tuple[float, ...] | None = None
        self.plan_version = 0                # bumped at every new plan: jobs in flight switch to it
        self.first_bound: float | None = None  # the first poll's bound in the current plan, if any
        self._floors: deque[float | None] = deque(maxlen=FIRST_BOUND_MEMORY)
        self._new_since_plan = 0
        self._planned_at = -1e9
        self._hints: deque[bool] = deque(maxlen=HINT_WINDOW)
        self._hint_off_until = 0
        self.hits = self.misses = 0          # jobs seen done at their first poll / later
        self.polls = 0
        self.hint_polls = 0
        self._dist: tuple[list[float], list[float]] | None = None  # the last estimate: grid, distribution function
        self.finished_jobs = 0
        self.shifts = 0                      # times the window was cut at a change of job times
        self.lateness_sum = 0.0              # estimated lateness of finished jobs (s)

    # -- jobs ---------------------------------------------------------------------------------

    def submitted(self, request_id: str, at: float | None = None) -> None:
        """A job was created; ``at``: when its upload left (default: now)."""
        if len(self._jobs) >= MAX_TRACKED:  # ids nobody waited for: drop the oldest
            self._jobs.pop(next(iter(self._jobs)))
        self._jobs[request_id] = _Waiting(self.clock() if at is None else at)

    def submitted_at(self, request_id: str) -> float | None:
        job = self._jobs.get(request_id)
        return job.submitted if job else None

    def forget(self, request_id: str) -> None:
        """A job that will not report a duration (timed out, lost): drop it."""
        self._jobs.pop(request_id, None)

    # -- the schedule -------------------------------------------------------------------------

    def plan(self) -> tuple[float, ...]:
        """Poll times after the submit, planned from recent jobs (before any: the prior)."""
        now, n = self.clock(), len(self.intervals)
        # Early on, every few jobs (the prior is a guess); later every REPLAN_EVERY jobs and at
        # most every REPLAN_MIN_S.
        due = (self._new_since_plan >= 4 and 8 <= n < 64) or (
            n >= 64 and self._new_since_plan >= REPLAN_EVERY and now - self._planned_at >= REPLAN_MIN_S)
        if self._plan is None or due:
            self._plan = self._compute_plan()
            self.plan_version += 1
            self._new_since_plan = 0
            self._planned_at = now
        return self._plan

    def schedule_for(self, request_id: str) -> list[float]:
        """This job's poll times: the plan, with an exploration probe for one job in twenty."""
        plan = list(self.plan())
        if self.intervals and plan and self.rng.random() < EXPLORE_RATE:
            # The probe is one extra look, outside the gap bound: the bound's promise rests on
            # the planned polls (a job ending between the probe and the first planned poll is
            # answered by that poll, as without the probe), so no ladder of polls follows it.
            # It reaches down to 0.3 of the first poll, which is how the floor of the job times
            # (first_poll_bound) is found when the first poll lies above it.
            # When most first polls miss, the first poll lies below the job times, and the jobs
            # end between it and the second: every interval is then that same gap, which says
            # nothing of where in it they end, and the floor estimated from it is the first poll
            # itself (a plan that polls every job twice keeps finding itself right). The probe
            # goes into that gap instead, which is what lets the first poll move up.
            if len(plan) > 1 and self._first_hit_share() < 0.5:
                probe = self.rng.uniform(plan[0], plan[1])
                plan.insert(1, probe)
            else:
                probe = plan[0] * self.rng.uniform(0.3, 0.95)
                if probe > 0.005:
                    plan.insert(0, probe)
        return plan

    def _first_hit_share(self) -> float:
        """The share of recent jobs a first poll found done."""
        return sum(1 for lo, _ in self.intervals if lo <= 0) / max(1, len(self.intervals))

    def reschedule(self, last_poll: float) -> list[float]:
        """The rest of the current plan for a job still running after a poll ``last_poll``
        seconds after its submit: a job that started on an older plan (the prior, while the
        first jobs of a run were all in flight) switches to the newest one; the gap bound holds
        from its last poll on."""
        # Plan points just after the last poll are left out: the new plan was made for jobs
        # polled at its own points, and a poll a moment after this job's last one tells little
        # (with a replan every second or two, such slivers were a poll in three).
        rest = [t for t in self.plan() if t > last_poll + self.max_gap(last_poll) / 2]
        if not rest or self.share is None:
            return rest
        return self._bounded([last_poll, *rest])[1:]

    def _bounded(self, times: list[float]) -> list[float]:
        if self.share is None:
            return list(times)
        return bounded(times, self.share, self.minimum, self.maximum, self.gap_floor)

    def _first_max(self, floor: float | None, share: float | None) -> float | None:
        """The latest first poll: the gap bound from the floor of the job times when they have
        one; else from the submit, as if it were a poll at 0 (``gap_floor``, widened with the
        share when the status budget cannot pay it): with no such cap a tight budget put the
        first poll of log-normal jobs at 3 s, and a 0.2 s job waited for it."""
        if share is None:
            return None
        if floor is not None:
            return floor + self.max_gap_with(share, floor)
        if self.gap_floor <= 0 or not self.gap_share:
            return None
        return self.gap_floor * max(1.0, share / self.gap_share)

    def max_gap_with(self, share: float, offset: float) -> float:
        return min(self.maximum, max(self.minimum, self.gap_floor, share * offset))

    def max_gap(self, offset: float) -> float:
        """The longest gap allowed after a poll ``offset`` seconds after the submit."""
        share = GAP_SHARE if self.share is None else self.share
        return self.max_gap_with(share, offset)

    def after_plan(self, last_offset: float, last_gap: float) -> float:
        """The next poll time once the plan is spent (a job slower than the recent ones): back
        off from the last gap, but never beyond the gap bound (a quarter of the time the job has
        run, or ``gap_floor``), so a slow job is seen at most a quarter of its time (or a
        second) late."""
        gap = min(max(self.minimum, last_gap * self.backoff), self.max_gap(last_offset))
        return last_offset + gap

    def _compute_plan(self) -> tuple[float, ...]:
        if len(self.intervals) < 8:
            # The prior, before any job time is known: a poll at ``first``, then every gap as
            # long as the bound allows (``gap_floor`` apart while that is longer than the share:
            # a naive poller's polls, then 25 % of the time). The first batch of a run (all in
            # flight on it) pays what a naive poller would until the first plan takes over; a
            # ladder from first / 4 with 0.2 s steps cost it about ten polls a 2 s job.
            return tuple(self._bounded([self.first, self.first * 4]))
        self._forget_before_a_shift()
        # Jobs still running are evidence too: they took longer than their last "not yet".
        # Leaving them out biases the estimate to the short jobs that finished first. But only
        # those running longer than any finished job: the others are the long ones of the jobs
        # of the last few seconds, whose short siblings are in the window already (a long job is
        # more likely to be running at any moment), and with 64 in flight over a window of 256
        # they tilted the estimate to long jobs (a plan for 4.7 polls a job spent 3.6 on
        # log-normal jobs, and was late where it thought them long).
        longest = max((hi for _, hi in self.intervals), default=0.0)
        running = [(job.last_miss, math.inf) for job in self._jobs.values() if job.last_miss > longest]
        edges, p = estimate_distribution(list(self.intervals) + running[-len(self.intervals):])
        self._dist = ([float(e) for e in edges], [0.0, *map(float, p.cumsum())])
        hits = sorted(hi for lo, hi in self.intervals if lo <= 0)
        first = self._plan[0] if self._plan else (hits[len(hits) // 2] if hits else None)
        floor = job_time_floor(edges, p, first) if self.gap_share is not None else None
        # The estimate wanders by +-15 % between plans; the lowest of the last few keeps a high
        # one from letting the fastest jobs wait (a low one costs a poll now and then), and one
        # plan that finds no floor (a window of first-poll hits says little) does not drop it.
        self._floors.append(floor)
        known = [f for f in self._floors if f is not None]
        floor = min(known) if known else None
        fine = refine(edges, p)
        budget = self.budget
        if budget is None:  # no status limits: what a naive poller would have spent on the recent jobs
            budget = NAIVE_SLACK * naive_polls(*estimate_distribution(list(self.intervals)),
                                               max(self.gap_floor, self.minimum))
        share = self.gap_share
        while True:
            first_max = self._first_max(floor, share)
            grid = split_at(*fine, first_max) if first_max is not None else fine
            plan, polls, _ = choose_schedule(*grid, budget=budget, share=self.lateness_share, minimum=self.minimum,
                                             gap_share=share, first_max=first_max, gap_floor=self.gap_floor)
            # The status budget first: a bound it cannot pay for is widened until it can (the
            # plan's limits would hold the polls back anyway: late polls and no throughput).
            if share is None or not self.widen or polls <= budget + 0.05 or share >= MAX_SHARE:
                break
            share = min(MAX_SHARE, share * 1.5)
        self.share, self.first_bound, self.budget_used = share, first_max, budget
        return tuple(self._bounded(sorted({min(t, self.maximum * 64) for t in plan})))

    def _forget_before_a_shift(self) -> None:
        """Drop the window's older intervals when the last ``SHIFT_RECENT`` jobs' times differ
        from them beyond chance (two-sample Kolmogorov-Smirnov on the intervals' upper ends,
        ``SHIFT_KS`` x the usual scale: about a 0.1 % false alarm) and by more than
        ``SHIFT_MIN`` of the median: the upper ends are poll times, so a new plan moves them a
        little with no change in the jobs (steady jobs all seen at a first poll that moved from
        0.55 to 0.52 s differ "beyond chance"). Why: a window of 256 past
        jobs predicts the next one only while job times are steady; on a queueing server the
        first batch's times climb from 0.3 s to 9.6 s (its position in the queue) and every later
        job takes ~9 s, and a plan drawn from the whole window kept ladders of polls for the
        climb (10-11 polls a job, lateness like a 1 s poller's) for two hundred jobs."""
        n, m = len(self.intervals) - SHIFT_RECENT, SHIFT_RECENT
        if n < SHIFT_RECENT:
            return
        his = [hi for _, hi in self.intervals]
        old, new = sorted(his[:n]), sorted(his[n:])
        d = max(abs(bisect.bisect_right(old, x) / n - bisect.bisect_right(new, x) / m) for x in his)
        med_old, med_new = old[n // 2], new[m // 2]
        moved = abs(med_new - med_old) > SHIFT_MIN * max(med_old, 1e-9)
        if moved and d > SHIFT_KS * math.sqrt((n + m) / (n * m)):
            for _ in range(n):
                self.intervals.popleft()
            self.shifts += 1

    # -- observations -------------------------------------------------------------------------

    def finished(self, request_id: str, lo: float, hi: float, polls: int, hinted_hit: bool = False) -> None:
        """A job was seen terminal after ``polls`` status calls: it ended in ``(lo, hi]``
        seconds after its submit (``lo`` = 0 when the first poll saw it done)."""
        job = self._jobs.pop(request_id, None)
        if job is None:
            return
        self.polls += polls
        self.finished_jobs += 1
        if polls <= 1:
            self.hits += 1
        else:
            self.misses += 1
        self.intervals.append((max(0.0, lo), max(hi, lo + 1e-6)))
        self._new_since_plan += 1
        self.lateness_sum += max(0.0, (hi - lo) / 2) if lo > 0 else self._lateness_of_first_hit(hi)
        if self._hint_off_until and self.finished_jobs >= self._hint_off_until:
            self._hint_off_until = 0
            self._hints.clear()
        if self._hints_on():
            for rid, other in self._jobs.items():
                if other.submitted < job.submitted and other.wake is not None:
                    other.wake.set()

    def _lateness_of_first_hit(self, hi: float) -> float:
        """Expected lateness of a job seen done at its first poll: half the first cell at most."""
        if self.intervals:
            los = [lo for lo, _ in self.intervals if 0 < lo < hi]
            if los:
                return (hi - max(los)) / 2
        return hi / 2

    def missed(self, request_id: str, at: float) -> None:
        """A poll ``at`` seconds after the submit found the job still running."""
        job = self._jobs.get(request_id)
        if job is not None:
            job.last_miss = max(job.last_miss, at)

    def hint_result(self, done: bool) -> None:
        """An order-hinted poll found its job done (or not): judge whether the hint pays."""
        self.hint_polls += 1
        self._hints.append(done)
        if len(self._hints) >= 16 and sum(self._hints) / len(self._hints) < HINT_MIN_PRECISION:
            self._hint_off_until = self.finished_jobs + HINT_RETRY_AFTER
            self._hints.clear()

    def _hints_on(self) -> bool:
        return not self._hint_off_until

    async def sleep(self, request_id: str, seconds: float) -> bool:
        """Sleep ``seconds``, or less when an order hint says the job is likely done (True)."""
        job = self._jobs.get(request_id)
        if job is None or not self._hints_on():
            await asyncio.sleep(max(0.0, seconds))
            return False
        job.wake = wake = asyncio.Event()
        try:
            await asyncio.wait_for(wake.wait(), max(0.0, seconds))
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            job.wake = None

    def done_chance(self, request_id: str) -> float:
        """The chance the job is done now, given it was running at its last poll (from the last
        plan's estimate; 0 before one): status polls queue by it in the status limiter, the
        likeliest first (``RateLimiter.acquire``)."""
        job = self._jobs.get(request_id)
        if job is None or self._dist is None:
            return 0.0
        grid, cdf = self._dist
        alive = 1.0 - _interp(job.last_miss, grid, cdf)
        if alive <= 1e-6:
            return 1.0
        return max(0.0, _interp(self.clock() - job.submitted, grid, cdf) - (1.0 - alive)) / alive

    def snapshot(self) -> dict[str, float]:
        n = max(1, self.finished_jobs)
        return {"jobs": self.finished_jobs, "polls_per_job": round(self.polls / n, 3),
                "first_poll_hits": self.hits, "hint_polls": self.hint_polls,
                "shifts": self.shifts,
                "lateness_est_mean_s": round(self.lateness_sum / n, 4),
                "gap_share": self.gap_share, "gap_share_used": None if self.share is None else round(self.share, 3),
                "gap_floor_s": self.gap_floor,
                "status_budget": None if self.budget_used is None else round(self.budget_used, 3),
                "first_poll_bound_s": None if self.first_bound is None else round(self.first_bound, 3),
                "plan": [round(t, 3) for t in (self._plan or ())][:12]}


# -- the estimate and the plan (pure functions, unit-tested on synthetic intervals) -------------


def estimate_distribution(intervals: list[tuple[float, float]], iterations: int = 300
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Turnbull's estimate of a job-time distribution from ``(lo, hi]`` intervals.

    Returns ``edges`` (the grid, ``edges[0] = 0``) and ``p`` (probability of each cell
    ``(edges[k], edges[k+1]]``)."""
    import numpy as np  # loaded when the learner first plans, not with the client
    lo = np.array([a for a, _ in intervals], dtype=float)
    hi = np.array([b for _, b in intervals], dtype=float)
    finite = hi[np.isfinite(hi)]
    top = max(float(finite.max()) if len(finite) else 0.0, float(lo.max()) if len(lo) else 0.0, 1e-3)
    # Right-censored jobs (still running, hi = inf) end in one tail cell up to twice the
    # longest time seen: the schedule then keeps polling them instead of giving up.
    hi = np.where(np.isfinite(hi), hi, 2.0 * top)
    points = np.unique(np.concatenate([lo[lo > 0], hi]))
    if len(points) > MAX_GRID:
        points = np.unique(np.quantile(points, np.linspace(0, 1, MAX_GRID)))
    edges = np.concatenate([[0.0], points])
    mids = (edges[:-1] + edges[1:]) / 2
    # Cell k lies in interval i when its middle does; an interval narrower than any cell
    # takes the cell holding its upper end.
    inside = (mids[None, :] > lo[:, None]) & (mids[None, :] <= hi[:, None])
    empty = ~inside.any(axis=1)
    if empty.any():
        cells = np.clip(np.searchsorted(edges, hi[empty], side="left") - 1, 0, len(mids) - 1)
        inside[np.flatnonzero(empty), cells] = True
    a = inside.astype(float)
    p = np.full(len(mids), 1.0 / len(mids))
    for _ in range(iterations):
        w = a * p
        w /= w.sum(axis=1, keepdims=True)
        new = w.mean(axis=0)
        if np.abs(new - p).max() < 1e-7:
            p = new
            break
        p = new
    return edges, p


def refine(edges: np.ndarray, p: np.ndarray, ratio: float = 1.15, parts: int = SUBDIVIDE
           ) -> tuple[np.ndarray, np.ndarray]:
    """Split every cell (each into at least ``parts``, and finer where a cell spans more than
    ``ratio`` from its start) with its mass spread evenly by width: the schedule may then poll
    inside a cell, which is how it finds times nobody polled at before (a plan built only from
    past poll times would keep repeating them), and a slow job in the tail is not seen a whole
    coarse cell late."""
    import numpy as np  # loaded when the learner first plans, not with the client
    fine = [0.0]
    mass = []
    for (a, b), q in zip(zip(edges[:-1], edges[1:]), p):
        start = max(a, 1e-3)
        k = max(parts, int(math.ceil(math.log(max(b, start) / start) / math.log(ratio)))) if b > a else 1
        k = min(k, 64)
        fine.extend(a + (b - a) * (i + 1) / k for i in range(k))
        mass.extend([q / k] * k)
    return np.array(fine), np.array(mass)


def _lateness_matrix(edges: np.ndarray, p: np.ndarray, minimum: float, gap_share: float | None = None,
                     first_max: float | None = None, gap_floor: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``C[a, b]``: expected lateness of the jobs ending in ``(edges[a], edges[b]]`` when the
    polls are at ``edges[a]`` and then ``edges[b]`` (``inf`` where ``b`` is not allowed:
    not after ``a``, closer than ``minimum`` to it except for the first poll, or, with
    ``gap_share``, further than ``max(minimum, gap_floor, gap_share * edges[a])`` after a poll,
    unless ``b`` is the nearest point ``minimum`` allows, so a plan always exists); and ``F``."""
    import numpy as np  # loaded when the learner first plans, not with the client
    n = len(p)
    mids = (edges[:-1] + edges[1:]) / 2
    F = np.concatenate([[0.0], np.cumsum(p)])          # F[k]: P(T <= edges[k])
    M = np.concatenate([[0.0], np.cumsum(p * mids)])
    C = edges[None, :] * (F[None, :] - F[:, None]) - (M[None, :] - M[:, None])
    ok = np.arange(n + 1)[None, :] > np.arange(n + 1)[:, None]
    spaced = (edges[None, :] - edges[:, None]) >= minimum - 1e-9
    spaced[0, :] = True
    spaced[:, n] = True                                 # the last cell's end is always allowed
    if gap_share is not None:
        reach = np.maximum(max(minimum, gap_floor), gap_share * edges)[:, None] + 1e-9
        near = (edges[None, :] - edges[:, None]) <= reach
        near[0, :] = True                               # the first poll: anywhere (but see first_max)
        if first_max is not None:                       # ... or not after the floor's bound
            near[0, :] = edges <= first_max + 1e-9
        # The nearest point the minimum spacing allows: always (a plan always exists). Below
        # ``minimum / gap_share`` the bound is the minimum itself, and a grid rarely has a point
        # exactly that far on; without this such a row had no allowed move at all, and the
        # dynamic programme walked the grid point by point from 0 (a plan of 0.0, 0.001, ...).
        first = np.argmax(ok & spaced, axis=1)
        near[np.arange(n), first[:n]] = True
        spaced &= near
    C = np.where(ok & spaced, C, np.inf)
    return C, F


def _dp(C: np.ndarray, F: np.ndarray, edges: np.ndarray, lam: float) -> tuple[list[float], float, float]:
    """The schedule minimising lateness + lam * polls; (times, expected polls, expected lateness)."""
    import numpy as np  # loaded when the learner first plans, not with the client
    n = len(F) - 1
    value = np.zeros(n + 1)
    choice = np.full(n + 1, n, dtype=int)
    for a in range(n - 1, -1, -1):
        row = C[a, a + 1:] + value[a + 1:]
        k = int(np.argmin(row))
        value[a] = lam * (1.0 - F[a]) + row[k]
        choice[a] = a + 1 + k
    times, polls, lateness, a = [], 0.0, 0.0, 0
    while a < n:
        b = int(choice[a])
        polls += 1.0 - F[a]
        lateness += C[a, b]
        times.append(float(edges[b]))
        a = b
    return times, polls, lateness


def choose_schedule(edges: np.ndarray, p: np.ndarray, *, budget: float, share: float,
                    minimum: float, gap_share: float | None = None, first_max: float | None = None,
                    gap_floor: float = 0.0) -> tuple[list[float], float, float]:
    """The fewest-poll schedule whose expected lateness is within ``share`` of the mean job
    time, or, when that needs more than ``budget`` polls a job, the least-late one within it.

    Larger ``lam`` (the price of a poll, in seconds of lateness) means fewer polls and more
    lateness; both searches bisect on ``log(lam)``."""
    mids = (edges[:-1] + edges[1:]) / 2
    mean = float((p * mids).sum()) or float(edges[-1]) or 1.0
    target = share * mean
    C, F = _lateness_matrix(edges, p, minimum, gap_share, first_max, gap_floor)
    cache: dict[float, tuple[list[float], float, float]] = {}

    def solve(log_lam: float) -> tuple[list[float], float, float]:
        if log_lam not in cache:
            cache[log_lam] = _dp(C, F, edges, mean * math.exp(log_lam))
        return cache[log_lam]

    lo, hi = math.log(1e-5), math.log(1e4)
    # 1. the largest lam whose lateness is on target (fewest polls that are good enough)
    if solve(lo)[2] <= target:
        a, b = lo, hi
        if solve(hi)[2] <= target:
            a = hi
        else:
            for _ in range(14):
                m = (a + b) / 2
                a, b = (m, b) if solve(m)[2] <= target else (a, m)
        chosen = a
    else:
        chosen = lo
    # 2. within the poll budget: raise lam until the expected polls fit
    if solve(chosen)[1] > budget + 1e-9:
        a, b = chosen, hi
        if solve(hi)[1] > budget + 1e-9:
            chosen = hi
        else:
            for _ in range(14):
                m = (a + b) / 2
                a, b = (a, m) if solve(m)[1] <= budget + 1e-9 else (m, b)
            chosen = b
    return solve(chosen)


def quantile(edges: np.ndarray, p: np.ndarray, q: float) -> float:
    """The ``q`` quantile of the estimated distribution (mass spread evenly inside each cell)."""
    import numpy as np  # loaded when the learner first plans, not with the client
    cdf = np.concatenate([[0.0], np.cumsum(p)])
    return float(np.interp(q, cdf, edges))


def job_time_floor(edges: np.ndarray, p: np.ndarray, first: float | None) -> float | None:
    """The floor of the job times (the shortest a job takes), when they have one: at least
    ``FLOOR_RATIO`` of the median (a GPU model's 5-20 s, a queue); None otherwise. The first poll
    is then planned by ``floor + max(minimum, share x floor)``, so a job at the floor is answered
    at most the gap bound's share of its time late, as every later gap promises.

    The floor lies below the first poll (``first``), where polls see nothing: the jobs a first
    poll finds done say only "done by then" (Turnbull's estimate puts them just under the first
    poll, and a bound from that would creep upwards plan after plan). So the floor is where the
    estimated distribution function, measured above the first poll, reaches zero when drawn on
    as a straight line: through its ``a`` and ``a + SPAN`` quantiles, ``a`` just above the share
    of jobs done by the first poll (at least 0.1). When the first poll is past nearly every job,
    the exploration probes below it are what measures those quantiles. A distribution whose
    density rises from the floor makes the estimate high, so the fastest jobs may be answered
    somewhat more than the share late (``bench/hosted_strips.py`` measures it).

    Job times reaching down towards zero (log-normal) have no floor: bounding their first poll
    would cost a ladder of polls from a fraction of a second for the few fastest jobs, more
    polls than a naive poller with no better lateness, so their first poll stays where the plan
    puts it (the bound holds from it on)."""
    done_first = cdf_at(edges, p, first) if first else 0.0
    a = max(0.1, done_first + 0.02)
    if a + SPAN > 0.99:
        a = 0.1
    qa, qb, median = quantile(edges, p, a), quantile(edges, p, a + SPAN), quantile(edges, p, 0.5)
    floor = qa - (qb - qa) * a / SPAN
    if median <= 0 or floor < FLOOR_RATIO * median:
        return None
    return floor


def cdf_at(edges: np.ndarray, p: np.ndarray, x: float) -> float:
    """The estimated share of jobs done by ``x`` seconds (mass spread evenly inside each cell)."""
    import numpy as np  # loaded when the learner first plans, not with the client
    return float(np.interp(x, edges, np.concatenate([[0.0], np.cumsum(p)])))


def split_at(edges: np.ndarray, p: np.ndarray, x: float) -> tuple[np.ndarray, np.ndarray]:
    """The grid with a point at ``x`` (its cell's mass split by width), so a plan can poll there."""
    import numpy as np  # loaded when the learner first plans, not with the client
    k = int(np.searchsorted(edges, x))
    if k == 0 or k >= len(edges) or abs(edges[k] - x) < 1e-9 or abs(edges[k - 1] - x) < 1e-9:
        return edges, p
    a, b = edges[k - 1], edges[k]
    share = (x - a) / (b - a)
    return (np.insert(edges, k, x), np.concatenate([p[:k - 1], [p[k - 1] * share, p[k - 1] * (1 - share)], p[k:]]))


def bounded(times: list[float], share: float, minimum: float, maximum: float = math.inf,
            floor: float = 0.0) -> list[float]:
    """``times`` with polls inserted wherever a gap after the first poll is longer than
    ``min(maximum, max(minimum, floor, share * t))`` after the poll at ``t`` (the gap bound, see
    the module doc): each inserted poll is placed as late as the bound allows, or halfway when
    that would leave less than ``minimum`` to the next planned one."""
    out: list[float] = []
    for t in times:
        while out:
            step = min(maximum, max(minimum, floor, share * out[-1]))
            gap = t - out[-1]
            if gap <= step + 1e-9:
                break
            out.append(out[-1] + (step if gap - step >= minimum else gap / 2))
        if not out or t > out[-1]:
            out.append(t)
    return out


def _interp(x: float, xs: list[float], ys: list[float]) -> float:
    """``np.interp`` for one point on short lists (called for every waiting status poll whenever one may go)."""
    k = bisect.bisect_right(xs, x)
    if k <= 0:
        return ys[0]
    if k >= len(xs):
        return ys[-1]
    x0, x1 = xs[k - 1], xs[k]
    return ys[k - 1] + (ys[k] - ys[k - 1]) * ((x - x0) / (x1 - x0) if x1 > x0 else 1.0)


def naive_polls(edges: np.ndarray, p: np.ndarray, every: float) -> float:
    """Status calls a job costs a poller asking every ``every`` seconds from the submit, on an
    estimated distribution (each cell's mass at its middle): the default status budget. The
    caller estimates it from finished jobs only: jobs still running are the long ones (a long
    job is more likely to be running at any moment), and with them this was a quarter too high
    on log-normal job times (64 in flight over a window of 256)."""
    import numpy as np  # loaded when the learner first plans, not with the client
    mids = (edges[:-1] + edges[1:]) / 2
    return max(1.0, float((p * np.maximum(1.0, np.ceil(mids / every - 1e-9))).sum()))


def budget_from_limits(submit: tuple[int | None, int | None], status: tuple[int | None, int | None],
                       default: float = 4.0) -> float:
    """Status calls a job may cost: the tightest ratio of the plan's status to submit limits
    (Basic: 200/50 a day = 4; premium: 300/300 a minute = 1), else ``default``."""
    ratios = [st / sb for st, sb in zip(status, submit) if st and sb]
    return max(1.0, min(ratios)) if ratios else default


__all__ = ["GAP_FLOOR", "GAP_SHARE", "PollPlanner", "naive_polls", "bounded", "budget_from_limits", "choose_schedule", "estimate_distribution",
           "cdf_at", "job_time_floor", "quantile", "split_at"]
