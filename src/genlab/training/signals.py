"""Stop signals that never lose trained work: SIGINT (Ctrl-C) and SIGTERM (``kill``, SLURM's
preemption, torchrun's shutdown).

While installed, a signal is a request that training reads at safe points: the step in progress
ends, the run saves, and the work that remains is skipped. Raising wherever the main thread happens
to be would be worse: mid-step it leaves half an optimiser step, inside a write half a file, inside
a library's locked region (e.g. TensorBoard's event queue) a lock held that hangs the final save.

Work that no unsaved state depends on (a validation evaluation, pictures, the final report) runs in
an ``abortable`` region, where the signal raises ``KeyboardInterrupt`` at once so the run stops
promptly; a write inside it runs ``protected`` and finishes first. A second signal is the user
insisting: it also ends abortable work that the first lets finish (under torchrun, where every rank
must stop at the same step), and the command exits 130 once the run is saved.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: a test of stop signals sets it to ``STAGE`` or ``STAGE@VISIT`` to hold the process at that pause
#: point (``StopSignals.pause_point``), and ``PAUSE_SIGNALS`` to the number of signals to wait for there
PAUSE_AT = "GENLAB_TEST_PAUSE_AT"
PAUSE_SIGNALS = "GENLAB_TEST_PAUSE_SIGNALS"
PAUSE_LIMIT = 60.0  # seconds a pause point waits for its signals at most


class StopSignals:
    """SIGINT and SIGTERM as stop requests while installed: a context manager, re-entrant (the
    handlers go back when the outermost ``with`` ends), main thread only (elsewhere it installs
    nothing). ``count``: signals received so far."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.count = 0
        self._abort_at: int | None = None  # in an abortable region: the count that raises there
        self._previous: dict = {}
        self._depth = 0  # nested ``with`` blocks
        self._visits: dict[str, int] = {}

    @property
    def requested(self) -> bool:
        return self.count > 0

    @property
    def insisted(self) -> bool:
        """A second signal came: the command exits 130 (after saving)."""
        return self.count > 1

    def __enter__(self) -> StopSignals:
        if self._depth == 0 and threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            for s, handler in self._previous.items():
                signal.signal(s, handler)
            self._previous = {}

    def _handle(self, signum, frame) -> None:
        self.count += 1
        self._raise_if_due()

    def _raise_if_due(self) -> None:
        if self._abort_at is not None and self.count >= self._abort_at:
            raise KeyboardInterrupt

    @contextmanager
    def _region(self, abort_at: int | None) -> Iterator[None]:
        outer, self._abort_at = self._abort_at, abort_at
        try:
            self._raise_if_due()  # a signal that came before the region began counts too
            yield
        finally:
            self._abort_at = outer
        self._raise_if_due()  # a signal that waited for a protected write takes effect after it

    def abortable(self, *, at: int = 1):
        """Work that can be dropped: the ``at``-th signal (received before or during it) raises
        KeyboardInterrupt in it."""
        return self._region(at)

    def protected(self):
        """A write (or any step that must not be cut in half): signals wait until it ends."""
        return self._region(None)

    def pause_point(self, stage: str) -> None:
        """A named stage where a test can hold the process: with ``GENLAB_TEST_PAUSE_AT=stage`` (its
        first visit) or ``stage@K`` (its K-th), announce it on stderr and wait until the
        ``GENLAB_TEST_PAUSE_SIGNALS`` (default 1) signals arrive, announcing each. Nothing otherwise."""
        wanted = os.environ.get(PAUSE_AT)
        if not wanted:
            return
        self._visits[stage] = visit = self._visits.get(stage, 0) + 1
        name, _, at = wanted.partition("@")
        if name != stage or visit != int(at or 1):
            return
        start = seen = self.count  # before the announcement, which the test answers with a signal
        deadline = time.monotonic() + PAUSE_LIMIT
        _announce(f"paused at {stage}")
        while self.count < start + int(os.environ.get(PAUSE_SIGNALS, "1")) and time.monotonic() < deadline:
            time.sleep(0.005)  # an abortable region's signal raises KeyboardInterrupt out of this sleep
            if self.count != seen:
                seen = self.count
                _announce(f"signal {seen - start} at {stage}")


def _announce(text: str) -> None:
    sys.stderr.write(f"genlab-test: {text}\n")
    sys.stderr.flush()
