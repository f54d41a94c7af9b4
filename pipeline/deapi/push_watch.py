"""Whether webhook pushes reach the receiver at all, and polling when they never do.

A receiver behind a proxy that forwards to the wrong path, a firewall, a secret that is not the
account's: deliveries never arrive (or are all refused), and every job waits ``webhook.wait_s``
(120 s by default) for a push before it is polled. Nothing fails, so nothing was said, and a run
of the hosted model's 5-20 s jobs went a hundred times slower than it should. So the waits are
watched: once ``MISSES_BEFORE_POLLING`` waits have timed out while the receiver has accepted no
delivery at all this run, the run says so once (what the receiver saw, where deAPI was told to
push) and polls ``request-status`` without waiting, until a delivery is accepted after all (jobs
that all outlasted ``wait_s``: then it waits again). One delivery accepted is enough to keep
waiting: pushes that arrive only sometimes are what ``wait_s`` is for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MISSES_BEFORE_POLLING = 3


class PushWatch:
    """``JobEvents.wait`` with a memory of the waits that came back empty."""

    def __init__(self, events: Any, receiver: Any, public_url: str | None,
                 warn: Callable[[str], None]) -> None:
        self.events, self.receiver, self.public_url, self.warn = events, receiver, public_url, warn
        self.timed_out = 0
        self.polling_only = False

    async def wait(self, request_id: str, timeout: float | None) -> Any:
        """The job's terminal event, or None (then: poll); at once when pushes never arrive."""
        if self.polling_only and self.receiver.counters.accepted:
            self.polling_only = False   # a push came after all (the first jobs outlasted wait_s): wait again
            self.warn("webhook pushes arrive after all: waiting for them again")
        event = await self.events.wait(request_id, 0 if self.polling_only else timeout)
        if event is None and not self.polling_only and (timeout is None or timeout > 0):
            self.timed_out += 1
            if self.timed_out >= MISSES_BEFORE_POLLING and self.receiver.counters.accepted == 0:
                self.polling_only = True
                self.warn(self._message(timeout))
        return event

    def _message(self, timeout: float | None) -> str:
        c = self.receiver.counters
        seen = (f"it received {c.received} deliveries and refused them all (signature {c.rejected_signature}, "
                f"stale {c.rejected_stale}, malformed {c.rejected_malformed}): check webhook.secret_env"
                if c.received else "nothing reached it")
        return (f"warning: no webhook push arrived while {self.timed_out} jobs each waited "
                f"webhook.wait_s ({timeout:g} s) for one: deAPI pushes to webhook.public_url "
                f"({self.public_url}), the receiver listens on {self.receiver.url} (paths "
                f"{', '.join(self.receiver.paths)}) and {seen}; polling request-status instead for "
                f"the rest of this run (docs/client.md, checking it)")

    def snapshot(self) -> dict[str, Any]:
        """For the run report: the receiver's counters and whether the run stopped waiting."""
        return {"receiver": self.receiver.counters.snapshot(), "waits_timed_out": self.timed_out,
                "stopped_waiting": self.polling_only}
