"""``tesserocr``, imported in one place so that Leptonica keeps quiet.

Why: Leptonica, Tesseract's image library, prints its own errors straight to stderr, with no
page or file named. Tesseract meets them inside pages it reads well enough: "Error in
pixCreateHeader: width must be > 0" came three times while the turned-page check read the crops
of one skewed page (``bench.unseen_pages``, a margin-note page at -4°), and nothing failed. A
cron job mails whatever a run prints, and an "Error in ..." line that names nothing alarms the
reader for nothing. What Tesseract cannot read still reaches us as its own return values and
exceptions; only Leptonica's printing is switched off (``set_leptonica_log_level``).

Imported lazily by every caller, so that start-up loads no Tesseract.
"""

from __future__ import annotations

import functools
from types import ModuleType


@functools.cache
def tesserocr() -> ModuleType:
    """The ``tesserocr`` module, Leptonica's messages off in this process (once)."""
    import tesserocr as module

    module.set_leptonica_log_level(module.LeptLogLevel.NONE)
    return module
