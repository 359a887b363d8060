"""The loop control the training runs share (``training.runloop``): a SIGTERM turned into a stop
request, the stop and checkpoint timing of a small run, the short-run learning rate."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from mcdenoise.training.runloop import RunClock, sigterm_requests, warm_cosine_lr


def test_sigterm_becomes_a_request_and_the_previous_handler_comes_back():
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda *_: seen.append("outer"))
    try:
        with sigterm_requests() as requested:
            assert requested == []
            os.kill(os.getpid(), signal.SIGTERM)
            assert requested == [True]
        assert seen == []
        os.kill(os.getpid(), signal.SIGTERM)  # the caller's handler is back
        assert seen == ["outer"]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_outside_the_main_thread_no_handler_is_installed():
    before = signal.getsignal(signal.SIGTERM)
    got = []

    def worker():
        with sigterm_requests() as requested:
            got.append((requested, signal.getsignal(signal.SIGTERM)))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert got == [([], before)]


def test_the_clock_stops_on_each_limit_and_checkpoints_on_time():
    clock = RunClock(first_step=10, minutes=0, checkpoint_minutes=1, stop_after=5)
    assert not clock.should_stop(14, []) and clock.should_stop(15, []) and clock.should_stop(11, [True])
    assert not clock.checkpoint_due(10)  # nothing to save before a step of this call
    assert not clock.checkpoint_due(12)  # not a minute yet
    clock.last_checkpoint -= 61
    assert clock.checkpoint_due(12) and not clock.checkpoint_due(13)  # due once, then the interval restarts
    budget = RunClock(first_step=0, minutes=2)
    assert not budget.should_stop(1000, [])
    budget.start -= 121
    assert budget.should_stop(1000, []) and budget.eta_seconds(1000, 2000) == 0.0
    assert RunClock(first_step=0).eta_seconds(0, 10) == float("inf")


@pytest.mark.parametrize("steps, warmup", [(3000, 100), (200, 50), (5, 50)])
def test_the_learning_rate_warms_up_then_falls_to_a_tenth(steps, warmup):
    lrs = [warm_cosine_lr(1e-3, s, steps, warmup) for s in range(steps + 1)]
    warm = min(warmup, steps // 10 or 1)
    assert lrs[warm - 1] == pytest.approx(1e-3)
    assert all(a < b for a, b in zip(lrs[:warm - 1], lrs[1:warm]))  # rising through the warm-up
    assert all(a >= b for a, b in zip(lrs[warm:], lrs[warm + 1:]))  # then never rising
    assert lrs[-1] == pytest.approx(1e-4)
