"""The one table of process exit codes, so cron and Makefiles can act on the outcome.

Every command returns one of these; README.md documents the same table. Values never change
once released: schedulers key on them.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0                  # every file is done (or was already done)
    FILES_FAILED = 1        # the run finished, but some files failed; see failures.json
    CONFIG_ERROR = 2        # bad config file or arguments (argparse also uses 2)
    STOPPED_EARLY = 3       # signal, deadline or daily quota: work is left for the next run
    LOCKED = 4              # another run holds the lock on this state store
    AUTH_OR_BALANCE = 5     # the API refused the token, or the balance is exhausted
    API_UNREACHABLE = 6     # the API could not be reached at start-up, or went away mid-run: work is left, retry later
    INTERNAL_ERROR = 70     # a bug: please report it (EX_SOFTWARE)
