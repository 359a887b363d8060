"""Training pairs from a rendered dataset: scene cache, deterministic split and augmented crops.

Inputs are prepared by each feature's own preparation (:mod:`mcdenoise.features`), the functions
inference's :func:`mcdenoise.inference.encode.fill_input` calls, so the network is trained in
exactly the space it will see: ``hdr.forward(colour, exposure)``
with the exposure of the *full noisy frame* (jittered by 2^U(-1,1): scaling radiance alone would
do nothing since autoexposure cancels it), albedo and normal from the *noisy* file (what users
have), and the target ``hdr.forward(reference, same exposure)``. Which passes a crop holds, and
how each is augmented, comes from the run's input layout (:mod:`mcdenoise.features`).

All randomness comes from one ``numpy.random.Generator`` whose state is saved in checkpoints,
which is what makes a resumed run draw the same crops as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mcdenoise import features, hdr
from mcdenoise.dataset.layout import SceneEntry, list_scenes
from mcdenoise.errors import InputFileError
from mcdenoise.io.exr import read_frame
from mcdenoise.inference.encode import FrameInputs
from mcdenoise.models import ensemble

# The share of crops of a layout with ``samples`` whose sample count is given as unknown.
UNKNOWN_SAMPLES = 0.1


@dataclass
class SceneData:
    """One scene decoded in RAM: per sample count colour (float32, fireflies need the range),
    the layout's other passes prepared (float16), its full-frame exposure, and the reference colour."""

    entry: SceneEntry
    noisy: dict[int, FrameInputs]
    exposure: dict[int, float]
    ref: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.ref.shape[:2]


def _prepared(feature: features.Feature, a: np.ndarray) -> np.ndarray:
    """NumPy form of the feature's preparation, on a float32 copy."""
    return feature.prepare(torch.from_numpy(np.array(a, dtype=np.float32)), 1.0).numpy()


def load_scene(entry: SceneEntry, inputs: str = features.DEFAULT_INPUTS, prefilter: torch.nn.Module | None = None) -> SceneData:
    """One scene of ``entry`` read for a model of layout ``inputs``; with ``prefilter`` (an aux
    prefilter, ``inference.prefilter``) its aux passes are those the prefilter returns, as
    inference will feed them to a model trained behind it."""
    guides = pass_guides(inputs)
    noisy: dict[int, FrameInputs] = {}
    exposure: dict[int, float] = {}
    for spp in entry.spps:
        f = read_frame(entry.noisy(spp), features=[g.name for g in guides])
        missing = [g.name for g in guides if getattr(f, g.name) is None]
        if missing:
            raise InputFileError(f"{entry.noisy(spp)}: dataset file lacks {'/'.join(missing)} passes; re-render it with render-dataset")
        # Prepared (clipped to the network's range) before the cast: Cycles albedo can exceed
        # fp16's 65504 (seen on one of 400 rendered scenes), and inf in the cache is a warning
        # per load. Preparing is idempotent, so the crop encoder preparing them again changes nothing.
        read = {g.name: getattr(f, g.name) for g in guides}
        if prefilter is not None and any(g.aux for g in guides):
            from mcdenoise.inference.prefilter import clean_aux
            from mcdenoise.inference.runtime import Runtime

            # On the CPU in fp32 whatever the training device (a scene's cleaned aux are one thing),
            # at the run's thread count (the runtime's default would reset it for the whole process).
            runtime = Runtime(precision="fp32", threads=torch.get_num_threads())
            cleaned = clean_aux(prefilter, FrameInputs(f.color, f.albedo, f.normal, samples=spp), None, runtime)
            read.update({name: getattr(cleaned, name) for name in features.AUX_FEATURES if name in read})
        passes = {name: _prepared(features.FEATURES[name], a).astype(np.float16) for name, a in read.items()}
        noisy[spp] = FrameInputs(hdr.sanitize(f.color), **passes, samples=spp)
        exposure[spp] = hdr.autoexposure(f.color)
    ref = hdr.sanitize(read_frame(entry.ref).color)
    return SceneData(entry, noisy, exposure, ref)


def pass_guides(inputs: str) -> tuple[features.Feature, ...]:
    """The layout's guides read from passes (a per-frame value such as ``samples`` is not)."""
    return tuple(f for f in features.layout_features(inputs)[1:] if f.planes is None)


def split_scenes(entries: list[SceneEntry], val_fraction: float) -> tuple[list[SceneEntry], list[SceneEntry]]:
    """Every k-th scene index (k = round(1/val_fraction)) is validation: deterministic, and stable
    while the dataset grows, so a scene never moves between the two sides."""
    if val_fraction <= 0:
        return list(entries), []
    k = max(int(round(1.0 / val_fraction)), 2)
    val = [e for e in entries if e.index % k == 0]
    train = [e for e in entries if e.index % k != 0]
    return train, val


def transform_planes(x: np.ndarray, op: int, vectors: tuple[tuple[int, int], ...] = ()) -> np.ndarray:
    """One of the 8 flips/rotations of a (C, h, w) input or (3, h, w) target, the ``vectors``
    channel pairs (:func:`mcdenoise.features.vector_pairs`) rotated with the picture: the same
    transform the ``high`` quality self-ensembles over."""
    return np.ascontiguousarray(ensemble.transform(torch.from_numpy(np.ascontiguousarray(x)), op, vectors).numpy())


class CropSampler:
    """Draws augmented training crops of input layout ``inputs``; its whole state is ``rng``
    (see :meth:`state`)."""

    def __init__(self, root: str | Path, val_fraction: float, crop: int, aux_dropout: float, seed: int,
                 inputs: str = features.DEFAULT_INPUTS, converged: float = 0.0, prefilter: torch.nn.Module | None = None):
        self.root = Path(root)
        self.inputs = inputs
        self.layout = features.layout_features(inputs)
        self.guides = pass_guides(inputs)
        self.passes = (self.layout[0], *self.guides)
        self.tells_samples = features.reads_samples(inputs)
        self.slices = features.channel_slices(inputs)
        self.vectors = features.vector_pairs(inputs)
        self.aux_channels = features.aux_channels(inputs)
        self.val_fraction = val_fraction
        self.crop = crop
        self.aux_dropout = aux_dropout
        self.converged = converged
        self.prefilter = prefilter  # the aux prefilter the model is trained behind (load_scene)
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self._cache: dict[int, SceneData] = {}
        self.train: list[SceneEntry] = []
        self.val: list[SceneEntry] = []
        self.reload()

    def reload(self) -> None:
        """Pick up scenes finished since the last scan (the renderer may still be running)."""
        entries = [e for e in list_scenes(self.root) if e.spps]
        self.train, self.val = split_scenes(entries, self.val_fraction)
        if not self.train:
            raise InputFileError(f"{self.root}: no finished training scenes ({len(entries)} found in all)",
                                 fix="render_dataset", root=self.root)

    def scene(self, entry: SceneEntry) -> SceneData:
        if entry.index not in self._cache:
            self._cache[entry.index] = load_scene(entry, self.inputs, self.prefilter)
        return self._cache[entry.index]

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def draw(self) -> tuple:
        """The random choices of one crop, in a fixed order from ``rng``: the only part of a
        sample that touches shared state, so crops can be built in worker threads while a run
        stays reproducible and resumable whatever the number of workers.

        With ``converged`` > 0 that share of crops stands for a render closer to convergence
        than any file of the dataset: the colour is the reference plus a fraction U(0, 1) of the
        highest sample count's noise (that file's guides, which are nearly clean there). Without
        such crops a network trained on 1-16 spp learns that all fine detail is noise: fed a
        1024-spp frame it erased texture the input held cleanly (docs/training.md).

        A layout that reads ``samples`` is told the crop's sample count, but in a share
        :data:`UNKNOWN_SAMPLES` of crops it is told "unknown", so that frames without Blender's
        stamp (arrays from the API, other renderers) are still denoised as a blind network
        would. A converging crop of fraction f stands for max spp / f² samples: its noise
        variance is f² that of the file. (The reference's own noise is left out: such a crop's
        target is that reference, so to the network it is noise-free.)"""
        rng = self.rng
        s = self.scene(self.train[int(rng.integers(len(self.train)))])
        spp = int(rng.choice(np.array(sorted(s.noisy))))
        h, w = s.shape
        c = min(self.crop, h, w)
        y, x = int(rng.integers(h - c + 1)), int(rng.integers(w - c + 1))
        op = int(rng.integers(8))
        perm = rng.permutation(features.COLOR.channels)
        jitter = float(2.0 ** rng.uniform(-1.0, 1.0))
        drop = bool(rng.random() < self.aux_dropout)
        noise = 1.0
        # Drawn only when asked for, so runs without converging crops keep their crop sequence.
        if self.converged > 0 and rng.random() < self.converged:
            spp, noise = max(s.noisy), float(rng.uniform())
        samples = None
        if self.tells_samples and rng.random() >= UNKNOWN_SAMPLES:  # drawn only for such layouts, as above
            samples = spp / noise**2 if noise > 0 else math.inf
        return s, spp, y, x, c, op, perm, s.exposure[spp] * jitter, drop, noise, samples

    def build(self, choice: tuple) -> tuple[np.ndarray, np.ndarray]:
        """One (input Cxcxc, target 3xcxc) float32 pair from :meth:`draw`'s choices."""
        s, spp, y, x, c = choice[:5]
        n = s.noisy[spp]
        windows = {f.name: torch.from_numpy(np.ascontiguousarray(getattr(n, f.name)[y : y + c, x : x + c]))[None]
                   for f in self.passes}
        inp, target = self.encode(windows, torch.from_numpy(np.ascontiguousarray(s.ref[y : y + c, x : x + c]))[None], [choice])
        return inp[0].numpy(), target[0].numpy()

    def encode(self, windows: dict[str, torch.Tensor], ref: torch.Tensor, choices: Sequence[tuple]) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops' network inputs (B, C, c, c) and targets (B, 3, c, c), float32, on the windows'
        device, from each pass's windows (B, c, c, channels) and :meth:`draw`'s choices of each
        crop: each pass prepared as :func:`mcdenoise.inference.encode.fill_input` prepares it,
        the colour shuffle, aux dropout and the flip/rotation applied. One function for a crop
        built on the host (B = 1, in a worker thread) and for a whole batch on the training
        device (``training.resident``), where one call per batch instead of per crop is what
        keeps a GPU from waiting on Python."""
        b, c = ref.shape[0], ref.shape[1]
        device = ref.device
        ops = [choice[5] for choice in choices]
        perm = torch.as_tensor(np.stack([choice[6] for choice in choices]), device=device).view(b, 1, 1, -1).expand(b, c, c, -1)
        exposure = torch.tensor([choice[7] for choice in choices], dtype=torch.float32, device=device).view(b, 1, 1, 1)
        noise = [choice[9] for choice in choices]
        ref32 = ref.to(torch.float32)
        if any(f < 1.0 for f in noise):  # converging renders: the reference plus a fraction of the noise
            fraction = torch.tensor(noise, dtype=torch.float32, device=device).view(b, 1, 1, 1)
            color = windows["color"].to(torch.float32)
            windows = {**windows, "color": torch.where(fraction < 1.0, ref32 + fraction * (color - ref32), color)}
        inp = torch.empty((b, features.channel_count(self.inputs), c, c), device=device)
        for f in self.layout:
            if f.planes is not None:
                planes = [f.planes(choice[10]) for choice in choices]
                inp[:, self.slices[f.name]] = torch.tensor(planes, dtype=torch.float32, device=device)[:, :, None, None]
                continue
            window = windows[f.name].to(torch.float32)
            if f.image or f.permute_with_color:
                window = window.gather(-1, perm)
            inp[:, self.slices[f.name]] = f.prepare(window.contiguous(), exposure).permute(0, 3, 1, 2)
        dropped = [i for i, choice in enumerate(choices) if choice[8]]
        if dropped and self.aux_channels:  # what inference feeds for a file without aux passes
            inp[torch.tensor(dropped, device=device)[:, None], torch.tensor(self.aux_channels, device=device)[None, :]] = 0.0
        target = hdr.forward_(ref32.gather(-1, perm).contiguous(), exposure).permute(0, 3, 1, 2)
        if len(set(ops)) == 1:
            return (ensemble.transform(inp, ops[0], self.vectors).contiguous(),
                    ensemble.transform(target, ops[0]).contiguous())
        inp_out, target_out = torch.empty_like(inp), torch.empty_like(target)
        for op in sorted(set(ops)):  # one flip/rotation at a time, for the crops that drew it
            rows = torch.tensor([i for i, o in enumerate(ops) if o == op], device=device)
            inp_out[rows] = ensemble.transform(inp[rows], op, self.vectors)
            target_out[rows] = ensemble.transform(target[rows], op)
        return inp_out, target_out

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One (input Cxcxc, target 3xcxc) float32 pair."""
        return self.build(self.draw())

    def batch(self, size: int, pool: Executor | None = None, keep: slice | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``size`` pairs stacked; with ``pool`` (threads: numpy and torch release the GIL in
        the heavy parts) the crops are built in parallel, which a GPU needs to stay busy. With
        ``keep`` all ``size`` choices are drawn (the generator advances as for the whole batch)
        and only that share of the crops is built: one process's part of a distributed batch."""
        choices = [self.draw() for _ in range(size)][keep or slice(None)]
        pairs = list(pool.map(self.build, choices)) if pool is not None else [self.build(c) for c in choices]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
