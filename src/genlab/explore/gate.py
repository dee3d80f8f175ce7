"""How much work the explorer takes on at once: a fixed number of workers and a short queue.

Every request that runs the model or decodes an upload is admitted by a ``WorkGate`` first. At most
``workers`` jobs run at once, each in a thread; at most ``waiting`` more requests wait for a worker;
a request beyond that is refused at once with 503 and ``Retry-After`` rather than queued. So the
memory a burst of requests can take is bounded by the gate, not by the number of clients: a worker
holds one decoded upload (at most ``images.MAX_SIDE``² pixels, reduced as it is decoded) or one
batch of at most 64 images, and a waiting request holds at most its body (``--max-upload``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio.to_thread

WORKERS = 2  # jobs at once: each already uses every torch thread, so more would not be faster
WAITING = 16  # requests admitted to wait for a worker (the page sends a handful at a time)
RETRY_AFTER = 1  # seconds a refused client is asked to wait


class Busy(Exception):
    """Every worker is busy and the queue is full (the request gets 503 with Retry-After)."""


class WorkGate:
    def __init__(self, workers: int = WORKERS, waiting: int = WAITING):
        if workers < 1 or waiting < 0:
            raise ValueError(f"a gate needs workers >= 1 and waiting >= 0, got {workers} and {waiting}")
        self.workers, self.waiting = workers, waiting
        self.admitted = 0  # requests between admit() and their end (read and changed on the event loop only)
        self._limiter: anyio.CapacityLimiter | None = None

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold a place for one request (running or waiting), or raise ``Busy`` when there is none."""
        if self.admitted >= self.workers + self.waiting:
            raise Busy(f"the explorer is busy ({self.workers} jobs running, {self.waiting} waiting); "
                       f"try again in {RETRY_AFTER} s")
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    async def run(self, fn: Callable, /, *args, **kwargs):
        """``fn(*args, **kwargs)`` in a worker thread, once one of the ``workers`` is free."""
        if self._limiter is None:  # made on the event loop (older anyio needs a running loop)
            self._limiter = anyio.CapacityLimiter(self.workers)
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=self._limiter)
