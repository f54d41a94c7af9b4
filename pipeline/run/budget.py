"""Spending caps, checked where a submission is admitted (right before its bytes leave).

Why here and not in the client: the client knows nothing of runs, days or config; the caps are
a property of the run. Every page is admitted with its price quote (``pipeline.run.pricing``) just
after the rate limiter let it go: admitting *reserves* its pages and cost, a created job
*commits* them to the ``spend`` ledger in the state store (the day's spend is summed across
runs from there), and a submit that provably created no job *releases* them.

Caps (``budget.*``, or ``--max-pages``/``--max-cost``/``--max-cost-per-day``):

* ``max_pages_per_run``: pages submitted by this run;
* ``max_cost_per_run``: the quotes of what this run submitted;
* ``max_cost_per_day``: the quotes of what every run submitted on this calendar day in
  ``budget.time_zone`` (``zoneinfo``; default UTC). A run going past midnight starts the new
  day's count at once.

A page that would exceed a cap is not sent: ``CapReached`` names the cap and the run stops
submitting (exit 3, the next run continues). The balance known at start-up is spent down by
the same quotes; a page it would not cover raises ``BalanceShort`` (exit 5), so a run never
keeps submitting into "Not enough balance." answers. The clock is injectable (``now``), so
tests cross a day boundary without waiting for one.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Callable
from zoneinfo import ZoneInfo

from pipeline.config import BudgetConfig

EPS = 1e-9  # float slack on sums of quotes


class CapReached(Exception):
    def __init__(self, cap: str, reason: str) -> None:
        super().__init__(reason)
        self.cap, self.reason = cap, reason


class BalanceShort(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Budget:
    def __init__(self, config: BudgetConfig, state: Any, run_id: int | None,
                 now: Callable[[], float] = time.time) -> None:
        self.config, self.state, self.run_id, self.now = config, state, run_id, now
        self.zone = ZoneInfo(config.time_zone)
        self.pages = 0              # committed this run
        self.cost = 0.0
        self.reserved_pages = 0     # admitted, not yet known to have created a job
        self.reserved_cost = 0.0
        self.unpriced = 0           # pages committed without a quote (the price call failed)
        self.balance: float | None = None   # at start-up
        self.cap_hit: str | None = None
        # (day, its spend: the ledger's sum when first asked plus this run's commits since). The
        # ledger is read once a day, not once a page: its sum scans every page of the day, and
        # nothing else writes it while this run holds the lock.
        self._day_spend: tuple[str, float] | None = None

    @property
    def has_cost_caps(self) -> bool:
        return self.config.max_cost_per_run is not None or self.config.max_cost_per_day is not None

    def day(self, ts: float | None = None) -> str:
        """The calendar day of ``ts`` (default now) in the configured time zone."""
        return datetime.fromtimestamp(self.now() if ts is None else ts, self.zone).date().isoformat()

    def set_balance(self, balance: float | None) -> None:
        self.balance = balance

    def planned_limit(self) -> float | None:
        """The most this run may spend by its cost caps (None: no cost cap)."""
        limits = []
        if self.config.max_cost_per_run is not None:
            limits.append(self.config.max_cost_per_run)
        if self.config.max_cost_per_day is not None:
            limits.append(max(0.0, self.config.max_cost_per_day - self._spent_on(self.day())))
        return min(limits) if limits else None

    def admit(self, cost: float | None) -> None:
        """Reserve one page at ``cost``; raise ``CapReached`` / ``BalanceShort`` instead when it
        would exceed a cap or the balance. ``cost`` None: the price is unknown."""
        c = self.config
        if c.max_pages_per_run is not None and self.pages + self.reserved_pages + 1 > c.max_pages_per_run:
            self._hit("budget.max_pages_per_run",
                      f"budget.max_pages_per_run reached: {c.max_pages_per_run} pages submitted by this run")
        if cost is None:
            if self.has_cost_caps:
                self._hit("budget.max_cost_per_run" if c.max_cost_per_run is not None else "budget.max_cost_per_day",
                          "a page's price could not be asked, so the cost caps cannot be kept")
            cost_known = 0.0
        else:
            cost_known = cost
        run_total = self.cost + self.reserved_cost + cost_known
        if c.max_cost_per_run is not None and run_total > c.max_cost_per_run + EPS:
            self._hit("budget.max_cost_per_run", f"budget.max_cost_per_run reached: this run submitted "
                      f"{self.cost + self.reserved_cost:.4f} of {c.max_cost_per_run:g}; the next page costs {cost_known:.4f}")
        if c.max_cost_per_day is not None:
            day = self.day()
            spent = self._spent_on(day) + self.reserved_cost
            if spent + cost_known > c.max_cost_per_day + EPS:
                self._hit("budget.max_cost_per_day", f"budget.max_cost_per_day reached: {spent:.4f} of "
                          f"{c.max_cost_per_day:g} spent on {day} ({c.time_zone}); the next page costs {cost_known:.4f}")
        if self.balance is not None and self.cost + self.reserved_cost + cost_known > self.balance + EPS:
            raise BalanceShort(f"the account balance ({self.balance:.4f} at the start) is spent: this run submitted "
                               f"{self.cost + self.reserved_cost:.4f}; top it up, the next run continues")
        self.reserved_pages += 1
        self.reserved_cost += cost_known

    def commit(self, cost: float | None) -> None:
        """The admitted page created a job (or may have): it is spent, in the ledger."""
        value = cost or 0.0
        self.reserved_pages -= 1
        self.reserved_cost -= value
        self.pages += 1
        self.cost += value
        if cost is None:
            self.unpriced += 1
        at = self.now()
        day = self.day(at)
        self.state.record_spend(self.run_id, day, 1, value, at)
        self._add_to_day(day, value)

    def _add_to_day(self, day: str, value: float) -> None:
        """A page entered in the ledger on ``day``, added to the day's spend as read (if read)."""
        if self._day_spend is not None and self._day_spend[0] == day:
            self._day_spend = (day, self._day_spend[1] + value)

    def unknown_earlier(self, cost: float | None,
                        record: Callable[[tuple[int | None, str, float, float]], bool]) -> None:
        """The spend row of a page an earlier run submitted with its outcome unknown (killed
        between the upload and its answer: the job may exist, and is charged). Such a page
        counts as spent, as one whose answer this run lost does; the row is written when a run
        first meets it (``StateStore.earlier_unknown``, once), on that day and under that run, at
        its quote now. It counts on the day (``max_cost_per_day``, the report's ``day``,
        ``status``), not in the run's own figures (``max_cost_per_run``: the run did not send
        it). Before, a kill mid-upload left that job in no ledger, so the day's cap could be
        passed by one page for each upload in flight at the kill."""
        value = cost or 0.0
        at = self.now()
        day = self.day(at)
        if record((self.run_id, day, value, at)):   # the ledger's row written now, not by an earlier run
            self._add_to_day(day, value)

    def _spent_on(self, day: str) -> float:
        """The quoted cost spent on ``day`` by every run (this one included)."""
        if self._day_spend is None or self._day_spend[0] != day:
            self._day_spend = (day, self.state.spend_on_day(day)[1])
        return self._day_spend[1]

    def release(self, cost: float | None) -> None:
        """The admitted page created no job (answered with an error, or never sent)."""
        self.reserved_pages -= 1
        self.reserved_cost -= cost or 0.0

    def _hit(self, cap: str, reason: str) -> None:
        if self.cap_hit is None:
            self.cap_hit = cap
        raise CapReached(cap, reason)

    def snapshot(self) -> dict[str, Any]:
        day = self.day()
        day_pages, day_cost = self.state.spend_on_day(day)
        caps = {k: getattr(self.config, k) for k in ("max_pages_per_run", "max_cost_per_run", "max_cost_per_day")}
        return {"pages_submitted": self.pages, "quoted_cost": round(self.cost, 6), "unpriced_pages": self.unpriced,
                "day": {"date": day, "time_zone": self.config.time_zone, "pages_submitted": day_pages,
                        "quoted_cost": round(day_cost, 6)},
                "balance_at_start": self.balance, "caps": caps, "cap_reached": self.cap_hit}
