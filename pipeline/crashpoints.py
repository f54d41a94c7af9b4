"""Named points where a test can make the process die with SIGKILL, to prove crash safety.

``PIPELINE_CRASHPOINT=after_submit:3`` kills the process the third time the runner passes
the ``after_submit`` point. Unset (always, in production) it costs one dict lookup. This is
fault injection on the client side, the counterpart of the server's: it lets tests kill the
pipeline at an exact step (before submit, right after submit, after polling, while writing)
instead of hoping a timer lands there.
"""

from __future__ import annotations

import os
import signal

_spec = os.environ.get("PIPELINE_CRASHPOINT", "")
_name, _, _nth = _spec.partition(":")
_target = int(_nth) if _nth.isdigit() else 1
_hits = 0


def crashpoint(name: str) -> None:
    global _hits
    if _name and name == _name:
        _hits += 1
        if _hits >= _target:
            os.kill(os.getpid(), signal.SIGKILL)
