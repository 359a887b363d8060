"""Training batches cut from a dataset kept on the training device (``--resident``).

On a GPU the network eats crops far faster than Python threads can cut, encode and augment them
on the CPU and copy them over: that, not the network, limited the project's GPU training. Here
every scene the run draws is uploaded once (raw colour and reference in float32, since fireflies
need the range, the prepared guides in float16 as the RAM cache holds them), the crops are cut
there, and the whole batch is encoded and augmented in one call of the function that builds a
host crop (:meth:`mcdenoise.training.data.CropSampler.encode`): crop by crop that was about 75
small operations each, every one a kernel launch the GPU waited for. The random choices still
come from the sampler's one generator (:meth:`CropSampler.draw`), so a run is resumable and sees
the batches it would see with host-built crops (equal to float rounding; ``tests/test_train.py``
checks this).
"""

from __future__ import annotations

import numpy as np
import torch

from mcdenoise.training.data import CropSampler, SceneData


class ResidentBatches:
    """Batches of :class:`CropSampler` choices built on ``device``; the interface of
    :class:`mcdenoise.training.batches.Batches` (no prefetch: device work is asynchronous)."""

    def __init__(self, sampler: CropSampler, size: int, device: torch.device, keep: slice | None = None):
        self.sampler, self.size, self.device, self.keep = sampler, size, device, keep or slice(None)
        self._scenes: dict[int, dict] = {}

    def _upload(self, s: SceneData) -> dict:
        index = s.entry.index
        if index not in self._scenes:
            put = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device)  # noqa: E731
            self._scenes[index] = {
                "ref": put(s.ref),
                "noisy": {spp: {"color": put(f.color), **{g.name: put(getattr(f, g.name)) for g in self.sampler.guides}}
                          for spp, f in s.noisy.items()},
            }
        return self._scenes[index]

    def resident_bytes(self) -> int:
        """Device memory the uploaded scenes hold."""
        tensors = [t for s in self._scenes.values() for t in [s["ref"], *(x for f in s["noisy"].values() for x in f.values())]]
        return sum(t.numel() * t.element_size() for t in tensors)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        choices = [self.sampler.draw() for _ in range(self.size)][self.keep]  # draws as for the whole batch
        sizes = {choice[4] for choice in choices}
        if len(sizes) > 1:  # scenes smaller than the crop size: crops of several sizes cannot stack
            raise ValueError(f"resident batches need one crop size; this batch drew {sorted(sizes)} (scenes smaller than the crop size)")
        windows: dict[str, list[torch.Tensor]] = {}
        refs = []
        for s, spp, y, x, c in (choice[:5] for choice in choices):
            scene = self._upload(s)
            for name, t in scene["noisy"][spp].items():
                windows.setdefault(name, []).append(t[y : y + c, x : x + c])
            refs.append(scene["ref"][y : y + c, x : x + c])
        return self.sampler.encode({name: torch.stack(ts) for name, ts in windows.items()}, torch.stack(refs), choices)

    def sampler_state(self) -> dict:
        return self.sampler.state()

    def settle(self) -> None:
        """Nothing is drawn ahead of the step."""

    def close(self) -> None:
        self._scenes.clear()
