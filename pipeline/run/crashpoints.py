"""Named points where a test can make the process die with SIGKILL, to prove crash safety.

``PIPELINE_CRASHPOINT=after_submit:3`` kills the process the third time the runner passes
the ``after_submit`` point; ``...:3:raise`` raises ``InjectedCrash`` there instead (a bug
stand-in, to test that an unexpected exception exits 70 with its traceback in the crash log), and
``...:1:SIGINT`` (or ``SIGTERM``) sends the process that signal there and goes on (a Ctrl-C or a
stop landing at that exact step), and ``...:1:stall`` blocks there for good (a step that never
ends, e.g. a geometry worker on a page, to test that a stop does not wait for it); a signal's
``...:1:SIGTERM:busy=1.5`` then keeps the thread busy that long (a step that holds the event
loop, as importing a module does on a loaded machine, so the run's handler runs late). Unset (always, in production) it costs one dict lookup. This is
fault injection on the client side, the counterpart of the server's: it lets tests kill the
pipeline at an exact step (before submit, right after submit, after polling, while writing)
instead of hoping a timer lands there.
"""

from __future__ import annotations

import os
import signal
import threading
import time

_spec = os.environ.get("PIPELINE_CRASHPOINT", "")
_name, _, _rest = _spec.partition(":")
_nth, _, _action = _rest.partition(":")
_action, _, _extra = _action.partition(":")
_busy_s = float(_extra[5:]) if _extra.startswith("busy=") else 0.0
_target = int(_nth) if _nth.isdigit() else 1
_hits = 0


class InjectedCrash(RuntimeError):
    """Raised at a crash point set to ``raise`` (tests only)."""


def crashpoint(name: str) -> None:
    global _hits
    if _name and name == _name:
        _hits += 1
        if _hits >= _target:
            if _action == "raise":
                raise InjectedCrash(f"injected crash at {name}")
            if _action == "stall":
                threading.Event().wait()
            if _action in ("SIGINT", "SIGTERM"):
                if _hits == _target:
                    os.kill(os.getpid(), getattr(signal, _action))
                    if _busy_s:
                        time.sleep(_busy_s)   # the loop is held: its signal callbacks wait
                return
            os.kill(os.getpid(), signal.SIGKILL)
