"""What every training loop here shares besides the resume (``training.checkpoint.restore``):
a stop requested by SIGTERM, the stop and checkpoint timing of a run with its own loop, and the
short-run learning rate.

A job scheduler, ``kill`` or a farm manager stops a run with SIGTERM; the loops finish the step
they are in and leave a checkpoint, so a stopped run resumes where it was. Ctrl-C does the same
through ``KeyboardInterrupt``.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@contextmanager
def sigterm_requests() -> Iterator[list[bool]]:
    """A list that gains an entry when SIGTERM arrives while the block runs, for the loop to
    stop at its next step; the previous handler is back afterwards. Only the main thread may
    install handlers, so elsewhere (a run started from a worker thread) the list stays empty."""
    requested: list[bool] = []
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: requested.append(True)) if main else None
    try:
        yield requested
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@dataclass
class RunClock:
    """When a small run with its own loop (the aux prefilter, the temporal blend) stops and
    checkpoints: after ``stop_after`` steps of this call, ``minutes`` of it, or a request; a
    checkpoint every ``checkpoint_minutes`` once a step was made."""

    first_step: int
    minutes: float = 0.0
    checkpoint_minutes: float = 2.0
    stop_after: int = 0
    start: float = field(default_factory=time.monotonic)
    last_checkpoint: float = field(init=False)

    def __post_init__(self) -> None:
        self.last_checkpoint = self.start

    def should_stop(self, step: int, requested: list[bool]) -> bool:
        return bool(requested) or bool(self.stop_after and step - self.first_step >= self.stop_after) \
            or bool(self.minutes and self.elapsed() >= self.minutes * 60)

    def checkpoint_due(self, step: int) -> bool:
        """True (and the interval restarted) when a timed checkpoint is due before this step."""
        now = time.monotonic()
        if step > self.first_step and now - self.last_checkpoint >= self.checkpoint_minutes * 60:
            self.last_checkpoint = now
            return True
        return False

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def eta_seconds(self, step: int, steps: int) -> float:
        """Seconds left at this call's rate, within the ``minutes`` budget if there is one."""
        rate = (step - self.first_step) / max(self.elapsed(), 1e-9)
        left = (steps - step) / rate if rate > 0 else math.inf
        return min(left, max(0.0, self.minutes * 60 - self.elapsed())) if self.minutes else left


def progress_line(verb: str, clock: RunClock, step: int, steps: int, loss: float) -> str:
    """The log line a small run prints every few steps when there is no progress bar."""
    rate = (step - clock.first_step) / max(clock.elapsed(), 1e-9)
    return f"{verb}: step {step}/{steps} loss {loss:.4f} ({rate:.2f} steps/s, ETA {clock.eta_seconds(step, steps) / 60:.1f} min)"


def warm_cosine_lr(peak: float, step: int, steps: int, warmup: int) -> float:
    """A short run's learning rate: linear warm-up over ``warmup`` steps (at most a tenth of the
    run), then cosine down to a tenth of ``peak`` at ``steps``: small networks trained for a few
    thousand steps keep learning at the end instead of freezing at zero."""
    warm = min(warmup, steps // 10 or 1)
    if step < warm:
        return peak * (step + 1) / warm
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, steps - warm)))))
