"""Stopping on SIGTERM/SIGINT without taking a lock inside the signal handler.

Python runs a signal handler in the main thread between two bytecodes. A handler that calls
`threading.Event.set()` deadlocks when the signal lands while that same thread holds the event's
(non-reentrant) lock, as it does for a few instructions on each `Event.wait()`. The handler here
only assigns a flag; the waiting side polls it in short sleeps.
"""

from __future__ import annotations

import signal
import time

POLL_SECONDS = 0.1


class StopSignal:
    """A stop request set by a signal handler; `wait()` returns soon after it is set."""

    def __init__(self) -> None:
        self._requested = False

    def install(self, *signums: int) -> StopSignal:
        """Make `signums` (SIGTERM and SIGINT by default) request the stop."""
        for signum in signums or (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        return self

    def _on_signal(self, signum, frame) -> None:
        self._requested = True  # a plain assignment: no lock, no allocation that could block

    def set(self) -> None:
        self._requested = True

    def is_set(self) -> bool:
        return self._requested

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until the stop is requested or `timeout` seconds have passed; True if requested."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._requested:
            remaining = POLL_SECONDS if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(POLL_SECONDS, remaining))
        return self._requested
