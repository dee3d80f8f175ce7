"""How many CPU threads a training step gets, chosen by timing real steps (``train.threads`` unset).

torch's default is one thread per core. For the small models of a laptop course that is often the
slowest choice: each step is a few milliseconds of work split across cores, and on a machine that is
doing anything else the threads wait for each other at every operation (docs/speed.md has the
measured figures). So, unless ``train.threads`` fixes it, the trainer times real training steps at
each candidate count and keeps the fastest:

* candidates: 1, 2, 4, ... up to the ceiling, ``torch.get_num_threads()`` when training starts (the
  cores, or fewer when ``OMP_NUM_THREADS`` or ``torch.set_num_threads`` say so);
* a trial: ``warmup`` steps untimed (at one thread, the count that suffers least from a busy machine),
  then ``steps_per_candidate`` steps at each candidate, fewest first; the shortest median step wins,
  and the fewer threads win a near tie (within ``tolerance``), leaving cores free. A candidate whose
  fastest step so far is already twice the best median is dropped at once: on a busy machine an
  oversubscribed step can take a hundred times longer, and the trial should not pay for that 8 times;
* the trial is run again after ``recheck`` seconds of training, since other work on the machine comes
  and goes; each trial that confirms the choice doubles the wait before the next (up to 8x), and one
  that changes it brings the wait back to ``recheck``.

Every step of a trial is a real training step: nothing is run twice, only the thread count changes.
"""

from __future__ import annotations

import logging
import statistics

import torch

log = logging.getLogger(__name__)


def candidates(ceiling: int) -> list[int]:
    """1, 2, 4, ... below ``ceiling``, then the ceiling itself."""
    out, n = [], 1
    while n < ceiling:
        out.append(n)
        n *= 2
    return [*out, ceiling]


class ThreadTuner:
    """Sets torch's thread count before each step (``before_step``) and learns from each step's duration
    (``after_step``); ``chosen`` is the count in use once a trial has ended (None before)."""

    def __init__(self, ceiling: int, *, warmup: int = 5, steps_per_candidate: int = 8, recheck: float = 30.0,
                 tolerance: float = 0.1, set_threads=torch.set_num_threads):
        self.options = candidates(ceiling)
        self.warmup, self.per_candidate, self.recheck, self.tolerance = warmup, steps_per_candidate, recheck, tolerance
        self.set_threads = set_threads
        self.chosen: int | None = None
        self.trials: list[dict[int, float]] = []  # per trial: thread count -> median step seconds
        self._times: dict[int, list[float]] = {}
        self._dropped: set[int] = set()  # candidates of this trial already too slow to win
        self._untimed = warmup
        self._since_trial = 0.0
        self._wait = recheck  # seconds of training until the next trial
        self._current: int | None = None

    @property
    def current(self) -> int | None:
        """The thread count the coming (or last) step runs with."""
        return self._current

    def _use(self, threads: int) -> None:
        if threads != self._current:
            self.set_threads(threads)
            self._current = threads

    def _trying(self) -> int | None:
        """The candidate the trial times next, or None when not in a trial."""
        if self.chosen is not None and self._since_trial < self._wait:
            return None
        return next((n for n in self.options if len(self._times.get(n, [])) < self.per_candidate
                     and n not in self._dropped), None)

    def before_step(self) -> None:
        trying = self._trying()
        if self._untimed > 0 or trying is None:
            self._use(self.chosen or self.options[0])
        else:
            self._use(trying)

    def after_step(self, seconds: float) -> None:
        if self._untimed > 0:
            self._untimed -= 1
            return
        if self.chosen is not None and self._since_trial < self._wait:
            self._since_trial += seconds
            return
        times = self._times.setdefault(self._current, [])
        times.append(seconds)
        best = min((statistics.median(t) for n, t in self._times.items() if len(t) == self.per_candidate),
                   default=None)
        if best is not None and len(times) < self.per_candidate and min(times) > 2 * best:
            self._dropped.add(self._current)
        if self._trying() is None:  # every candidate timed or dropped: decide
            medians = {n: statistics.median(t) for n, t in self._times.items()}
            best = min(medians.values())
            chosen = min(n for n, m in medians.items() if m <= best * (1 + self.tolerance))
            self._wait = min(2 * self._wait, 8 * self.recheck) if chosen == self.chosen else self.recheck
            self.chosen = chosen
            self.trials.append(medians)
            log.info("threads: %d (median step %s)", self.chosen,
                     ", ".join(f"{n} thread{'s' * (n > 1)} {m * 1e3:.2f} ms" for n, m in medians.items()))
            self._times, self._dropped, self._since_trial = {}, set(), 0.0
            self._use(self.chosen)


def thread_tuner(threads: int | None, device: torch.device, distributed: bool) -> ThreadTuner | None:
    """A tuner when the thread count is left to measurement: ``train.threads`` unset, on a CPU, in one
    process, with more than one thread allowed; otherwise the fixed count is set and None returned."""
    if threads:
        torch.set_num_threads(threads)
        return None
    ceiling = torch.get_num_threads()
    if device.type != "cpu" or distributed or ceiling < 2:
        return None
    return ThreadTuner(ceiling)
