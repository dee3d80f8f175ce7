"""The thread count of training steps, chosen by timing real steps (``genlab.training.threads``)."""

from __future__ import annotations

import pytest

from genlab.training.threads import ThreadTuner, candidates


def run(tuner: ThreadTuner, step_seconds, steps: int) -> list[int]:
    """Drive the tuner as the trainer does; ``step_seconds(threads)`` is how long a step takes. The threads used
    by each step are returned."""
    used = []
    for _ in range(steps):
        tuner.before_step()
        used.append(tuner.current)
        tuner.after_step(step_seconds(tuner.current))
    return used


def test_candidates_are_powers_of_two_up_to_the_ceiling():
    assert candidates(1) == [1]
    assert candidates(2) == [1, 2]
    assert candidates(6) == [1, 2, 4, 6]
    assert candidates(8) == [1, 2, 4, 8]


@pytest.mark.parametrize("faster, expected", [(1, 1), (2, 2)])
def test_the_faster_count_is_kept(faster, expected):
    set_to = []
    tuner = ThreadTuner(2, warmup=2, steps_per_candidate=3, recheck=100.0, set_threads=set_to.append)
    used = run(tuner, lambda n: 0.001 if n == faster else 0.010, 2 + 2 * 3 + 20)
    assert tuner.chosen == expected
    assert used[:2] == [1, 1]  # warm-up at one thread, untimed
    assert used[2:5] == [1, 1, 1]  # the trial: each candidate in turn
    if faster == 1:
        assert used[5:7] == [2, 1]  # one step at 2 threads is 10x the best median: dropped at once
    else:
        assert used[5:8] == [2, 2, 2]
        assert set(used[8:]) == {expected}
    assert set_to[-1] == expected and tuner.trials[0] == {1: pytest.approx(0.001 if faster == 1 else 0.010),
                                                          2: pytest.approx(0.001 if faster == 2 else 0.010)}
    assert used[-20:] == [expected] * 20


def test_a_near_tie_goes_to_fewer_threads():
    tuner = ThreadTuner(4, warmup=0, steps_per_candidate=2, recheck=100.0, set_threads=lambda n: None)
    run(tuner, lambda n: {1: 0.0105, 2: 0.0100, 4: 0.0101}[n], 6 + 5)
    assert tuner.chosen == 1  # 5% slower than the best: within the 10% tolerance


def test_the_choice_follows_the_load_after_a_recheck():
    """Another job starts mid-run: more threads become slower, and the next trial notices."""
    tuner = ThreadTuner(2, warmup=0, steps_per_candidate=2, recheck=1.0, set_threads=lambda n: None)
    quiet = {1: 0.010, 2: 0.006}
    busy = {1: 0.012, 2: 0.060}
    run(tuner, quiet.get, 4)
    assert tuner.chosen == 2
    run(tuner, busy.get, 200)  # 1 s of busy steps at 2 threads ends the settled period; the trial re-runs
    assert tuner.chosen == 1 and len(tuner.trials) >= 2


def test_a_fixed_count_or_one_thread_needs_no_tuner(monkeypatch):
    import torch

    from genlab.training.threads import thread_tuner

    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    assert thread_tuner(3, torch.device("cpu"), distributed=False) is None
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert thread_tuner(None, torch.device("cpu"), distributed=False) is None
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert thread_tuner(None, torch.device("cpu"), distributed=True) is None
    assert thread_tuner(None, torch.device("cpu"), distributed=False).options == [1, 2, 4]


def test_a_confirmed_choice_is_checked_less_often():
    tuner = ThreadTuner(2, warmup=0, steps_per_candidate=1, recheck=1.0, set_threads=lambda n: None)
    run(tuner, {1: 0.01, 2: 0.1}.get, 2 + 1000)  # 10 s of steady steps at one thread
    # trials after 1, 2, 4 and 8 s of training, then every 8 s: 4 or 5 trials, not 10
    assert tuner.chosen == 1 and 4 <= len(tuner.trials) <= 5, len(tuner.trials)
