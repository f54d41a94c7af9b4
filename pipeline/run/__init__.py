"""One run and one file's way through it.

``runner`` wires the bounded worker pool, signals, deadline and exit code; ``process`` takes one
file through plan -> prepare -> submit -> await -> write -> record; ``state`` is the SQLite state
store and ``lock`` the run lock; ``budget`` and ``pricing`` say what a page costs and whether it
may go; ``plan`` is the dry run, ``adopt`` takes over finished outputs, ``audit`` is ``status``
and ``verify``, ``report`` the progress line and run report; ``client_setup`` turns the
configuration into client settings; ``crashpoints`` are the named kill points of the crash tests.
"""
