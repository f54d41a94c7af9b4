"""Why a file did not finish: ``FileFailure`` (its state, class, reason and code for the state
store and ``failures.json``), and the failures of a file that moved under the run.

A file moved, replaced or deleted while the run read it is no fault of its content: it is
``vanished`` or ``changed`` (``IN_FLUX``), a transient failure the next run looks at again.
"""

from __future__ import annotations

import os

from pipeline.formats.writer import OutputError
from pipeline.inputs.scan import ScanEntry


# What a file may do under a run (codes of the FileFailure, names of the Outcome): not its content's
# fault, so ``_fail`` records nothing while the file is still gone or changed.
IN_FLUX = ("vanished", "changed")


class FileFailure(Exception):
    def __init__(self, state: str, error_class: str, reason: str, code: str | None = None,
                 api_side: bool = False) -> None:
        super().__init__(reason)
        self.state, self.error_class, self.reason, self.code = state, error_class, reason, code
        self.api_side = api_side   # the API failed (nothing answered, a 5xx), not this file: see run.outage


def unreadable(entry: ScanEntry, reason: str, code: str) -> FileFailure:
    """A file that could not be read, or not as an image: a rejected input, unless it is no longer
    there. A scan moved, renamed or deleted after the walk found it (a scanner station tidying up
    during the night) is no fault of its content: recorded as rejected, the content's row said
    "failed earlier" for good when the scan came back (or stayed so under its old name, a done
    file's row with it), until ``--retry-failed``. Such a file is ``vanished``: a transient
    failure that ``FileProcessor._fail`` does not even record while the path is empty (``Outcome.VANISHED``).
    Likewise a file written to since the walk (a copy still under way, with ``min_file_age_s``
    at its default 0): the bytes read were not the file's; it was rejected as ``truncated`` or
    ``corrupt`` ("copy it again") and exit 1, though the copy was fine and only unfinished.
    Such a file is ``changed``: the next run reads it whole."""
    if changed_since_walk(entry):
        return in_flux(entry, f"while it was read: {reason}")
    return FileFailure("rejected_input", "rejected_input", reason, code)


def vanished(reason: str) -> FileFailure:
    return FileFailure("failed_transient", "transient", f"the file vanished while the run read it ({reason}): "
                       "moved, renamed or deleted during the run; the next run looks again", "vanished")


def output_failure(entry: ScanEntry, exc: OutputError) -> FileFailure:
    """An output that cannot be written: permanent, unless the source moved under the run (the
    searchable PDF is made from its pixels after the OCR). Moved, the file is in flux, its pages'
    answers stay stored, and the next run writes it without paying again."""
    if not changed_since_walk(entry):
        return FileFailure("failed_permanent", "permanent", str(exc), "output_error")
    return in_flux(entry, f"before its outputs were written: {exc}")


def in_flux(entry: ScanEntry, when: str) -> FileFailure:
    """The failure of a file found moved under the run: ``vanished`` when gone, else ``changed``."""
    if not entry.path.exists():
        return vanished(when)
    return FileFailure("failed_transient", "transient", f"the file changed while the run read it ({when}): "
                       "replaced, or still being copied; the next run reads it again", "changed")


def changed_since_walk(entry: ScanEntry) -> bool:
    """Whether the file is not what the walk saw (size, mtime or inode moved, or gone): its hash,
    taken after the walk, may then be of other bytes than the pages read from it."""
    try:
        st = os.stat(entry.path)
    except OSError:
        return True
    return (st.st_size, st.st_mtime_ns, st.st_ino) != (entry.size, entry.mtime_ns, entry.inode)
