"""Training batches in the order the sampler draws them, optionally built by threads and
prefetched one step ahead, without changing which batches a run sees (``training.loop``). Under
torchrun a process keeps only its share (``keep``) of each batch it draws."""

from __future__ import annotations

import contextlib
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from mcdenoise.training.data import CropSampler


class Batches:
    """Training batches, drawn in order from the sampler. With workers, threads build the crops
    and batch n+1 is drawn while the device runs step n; the sampler state a checkpoint saves is
    then the one from before the batch not yet trained on, so a resumed run sees exactly the
    batches an uninterrupted one would."""

    def __init__(self, sampler: CropSampler, size: int, workers: int, keep: slice | None = None):
        self.sampler, self.size, self.keep = sampler, size, keep
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="crops") if workers > 0 else None
        self.prefetch = ThreadPoolExecutor(1, thread_name_prefix="prefetch") if self.pool is not None else None
        self.pending: list[Future] = []

    def _draw(self) -> tuple[dict, np.ndarray, np.ndarray]:
        state = self.sampler.state()
        return (state, *self.sampler.batch(self.size, self.pool, self.keep))

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        if self.prefetch is None:
            return self.sampler.batch(self.size, keep=self.keep)
        future = self.pending.pop() if self.pending else self.prefetch.submit(self._draw)
        _, x, y = future.result()
        self.pending.append(self.prefetch.submit(self._draw))
        return x, y

    def sampler_state(self) -> dict:
        """The sampler state to resume from: before the prefetched batch, if there is one."""
        if self.pending:
            with contextlib.suppress(Exception):  # a failed batch is re-drawn on resume
                return self.pending[0].result()[0]
        return self.sampler.state()

    def settle(self) -> None:
        """Wait for the batch being drawn, so nothing draws while the scene list changes."""
        if self.pending:
            self.pending[0].result()

    def close(self) -> None:
        for executor in (self.prefetch, self.pool):
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
