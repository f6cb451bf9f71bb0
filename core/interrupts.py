"""Ctrl-C that always ends the process: a bounded grace period for the normal unwinding.

A command that runs worker processes (``build --num-proc``) reacts to Ctrl-C (SIGINT) by
raising ``KeyboardInterrupt`` in its main thread; the unwinding then closes the worker pool,
removes the partial output and prints one line (``ct_degradbench.main``). That unwinding waits
on the workers (pool and manager processes joined, results drained), and a worker caught at the
wrong moment can make it wait forever: a build was seen still alive hours after Ctrl-C.

:func:`bounded_interrupt` keeps the normal path and bounds it: the first Ctrl-C starts a
watchdog thread; if the process is still alive ``grace_s`` seconds later (or at a second
Ctrl-C), the watchdog stops the child processes (SIGTERM, then SIGKILL), runs the cleanups it
was given (removing the partial output: nothing half-written may be left looking complete),
prints :data:`INTERRUPTED_MESSAGE` unless it was printed already, and ends the process with
exit status 130 (128 + SIGINT, as a shell reports Ctrl-C). This module imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

INTERRUPTED_MESSAGE = ("ct-degradbench: interrupted; no partial output was left looking complete; "
                       "rerun the same command to resume")
INTERRUPTED_EXIT_STATUS = 130          # 128 + SIGINT
DEFAULT_GRACE_S = 30.0                 # time the normal unwinding gets after Ctrl-C
TERMINATE_WAIT_S = 3.0                 # time a child gets between SIGTERM and SIGKILL

# Python's multiprocessing resource tracker (a process of its own) unlinks the semaphores of a worker
# pool that Ctrl-C stopped, and then warns about each, after the one line of report_interrupted. It
# takes its warning filters from the -W options of the process that starts it (sys.warnoptions).
RESOURCE_TRACKER_FILTER = "ignore:resource_tracker:UserWarning"

_message_printed = threading.Event()


def quiet_resource_tracker() -> None:
    """Keep the resource tracker's end-of-run warnings (leaked semaphores it then removes) off stderr:
    adds :data:`RESOURCE_TRACKER_FILTER` to ``sys.warnoptions``, which a resource tracker started later
    receives as a ``-W`` option. The semaphores are still removed; only the notice is not printed."""
    if RESOURCE_TRACKER_FILTER not in sys.warnoptions:
        sys.warnoptions.append(RESOURCE_TRACKER_FILTER)


def report_interrupted() -> int:
    """Print :data:`INTERRUPTED_MESSAGE` on stderr (once per process); return the exit status.

    The line starts with a carriage return: a progress bar cut short by the interrupt leaves its
    line unfinished (seen as "    ct-degradbench: interrupted ..."), and the message must start its
    own line."""
    if not _message_printed.is_set():
        _message_printed.set()
        print("\r" + INTERRUPTED_MESSAGE, file=sys.stderr, flush=True)
    return INTERRUPTED_EXIT_STATUS


def _stop_children() -> None:
    """SIGTERM, then SIGKILL, every live child process started by ``multiprocess`` or
    ``multiprocessing`` (the worker pools and managers of ``datasets`` and of this package)."""
    children = []
    for name in ("multiprocess", "multiprocessing"):
        module = sys.modules.get(name)
        if module is not None:
            with contextlib.suppress(Exception):
                children += module.active_children()
    for child in children:
        with contextlib.suppress(Exception):
            child.terminate()
    for child in children:
        with contextlib.suppress(Exception):
            child.join(TERMINATE_WAIT_S)
            if child.is_alive():
                child.kill()


def _force_exit(cleanups) -> None:
    """Clean up and say so first: stopping the children may let the main thread finish its own
    unwinding (and the process end) before this thread gets further."""
    for cleanup in cleanups:
        with contextlib.suppress(Exception):
            cleanup()
    report_interrupted()
    _stop_children()
    os._exit(INTERRUPTED_EXIT_STATUS)


@contextlib.contextmanager
def bounded_interrupt(*cleanups, grace_s: float = DEFAULT_GRACE_S):
    """Inside this block, Ctrl-C raises ``KeyboardInterrupt`` as usual and also starts a
    watchdog that ends the process ``grace_s`` seconds later if it is still running (a second
    Ctrl-C ends it at once); see the module docstring. ``cleanups`` are callables run before
    that forced exit (each must be safe to run after the normal path already did its part).

    The watchdog outlives the block on purpose: a hang may come after it (a child process
    joined at interpreter exit). Signal handlers live in the main thread: called from another
    thread (a web demo's worker, say), the block changes nothing.
    """
    if grace_s <= 0:
        raise ValueError(f"grace_s must be > 0 seconds, got {grace_s!r}")
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    started = threading.Event()

    def on_sigint(signum, frame):
        if started.is_set():                       # a second Ctrl-C: no more waiting
            _force_exit(cleanups)
        started.set()
        timer = threading.Timer(grace_s, _force_exit, args=(cleanups,))
        timer.daemon = True
        timer.start()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is on_sigint:
            signal.signal(signal.SIGINT, previous)
