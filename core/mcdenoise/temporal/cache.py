"""The temporal blend's training data: every frame of the training sequences run once through
the frozen single-frame model, and kept as the temporal path keeps it.

The blend only ever sees the single-frame model's output, so that model runs once per noisy
frame (the expensive part) and its output is cached in the run folder with everything else
the history computes per frame (:func:`mcdenoise.temporal.history.keep`: tolerance noise, the
Vector pass in half, the warp's sample positions and validity, the guides) plus the frame's
reference. Training then unrolls the blend over windows of these frames with no network but
the blend's. One file per sequence and sample count::

    RUN/cache/scene_00042_0004spp.pt

Sequences are read only through :func:`mcdenoise.dataset.layout.list_sequences` (finished
sequences: every frame's reference present and the description written last). A file is
written atomically once the whole sequence is done, so a killed run recomputes at most one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mcdenoise import hdr
from mcdenoise.dataset import layout
from mcdenoise.errors import McDenoiseError
from mcdenoise.io.atomic import atomic_output
from mcdenoise.io.exr import read_frame
from mcdenoise.temporal.history import Kept, keep

CACHE_FORMAT = "mcdenoise-temporal-cache/1"


@dataclass
class CachedSequence:
    """One sequence at one sample count: its frames as the history keeps them, and references."""

    name: str  # scene_00042_0004spp
    frames: list[Kept]
    refs: torch.Tensor  # (T, H, W, 3) float32 radiance


def _to_file(seq: CachedSequence, model_label: str) -> dict:
    f = seq.frames
    payload = {"format": CACHE_FORMAT, "model": model_label, "numbers": torch.tensor([k.number for k in f]),
               "denoised": torch.stack([k.denoised for k in f]), "noise": torch.stack([k.noise for k in f]),
               "vector": torch.stack([k.vector for k in f]), "exposure": torch.tensor([k.exposure for k in f], dtype=torch.float64),
               "points": torch.stack([k.points for k in f[1:]]), "valid": torch.stack([k.valid for k in f[1:]]),
               "refs": seq.refs}
    if f[0].guides is not None:
        payload["guides"] = torch.stack([k.guides for k in f])
    return payload


def _from_file(name: str, p: dict) -> CachedSequence:
    frames = []
    for t in range(len(p["numbers"])):
        frames.append(Kept(int(p["numbers"][t]), p["denoised"][t], p["noise"][t], p["vector"][t], float(p["exposure"][t]),
                           p["points"][t - 1] if t else None, p["valid"][t - 1] if t else None,
                           p["guides"][t] if "guides" in p else None))
    return CachedSequence(name, frames, p["refs"])


def _compute(name: str, entry: layout.SequenceEntry, spp: int, loaded, runtime) -> CachedSequence:
    """Run the single-frame model on every frame as ``denoise`` does (same reader, same model
    call) and keep each frame as the history would."""
    from mcdenoise.inference.frames import prepare_frame, run_model

    frames: list[Kept] = []
    refs = []
    for t in range(1, entry.frames + 1):
        prepared = prepare_frame(loaded, entry.noisy(spp, t), also_read=("vector",))
        frame = prepared.frame
        if frame.vector is None:
            raise McDenoiseError(f"{entry.noisy(spp, t)}: no Vector pass; a training sequence needs it in every frame "
                                 "(render the sequence again with the Vector pass)")
        denoised = run_model(loaded, prepared, runtime).astype(np.float32)
        frames.append(keep(t, denoised, frame.color, frame.vector, prepared.exposure, frames[-1] if frames else None,
                           frame.albedo, frame.normal, with_guides=True))
        refs.append(torch.from_numpy(hdr.sanitize(read_frame(entry.ref(t)).color)))
    return CachedSequence(name, frames, torch.stack(refs))


def build(data: str | Path, run_dir: str | Path, model: str, device: str = "cpu", spps: tuple[int, ...] = (),
          log: Callable[[str], None] = print) -> list[CachedSequence]:
    """Every finished sequence of ``data`` at every sample count (or only ``spps``), from the
    cache in ``run_dir`` where it is there, computed (and cached) where not."""
    entries = layout.list_sequences(data)
    if not entries:
        raise McDenoiseError(f"{data}: no finished training sequence (frames with the Vector pass and references)",
                             fix="render_dataset", root=str(data))
    folder = Path(run_dir) / "cache"
    folder.mkdir(parents=True, exist_ok=True)
    loaded = runtime = None
    out: list[CachedSequence] = []
    for entry in entries:
        if entry.frames < 2:
            continue
        for spp in (s for s in entry.spps if not spps or s in spps):
            name = f"{entry.dir.name}_{spp:04d}spp"
            path = folder / f"{name}.pt"
            if path.is_file():
                payload = torch.load(path, map_location="cpu", weights_only=True)
                if payload.get("format") == CACHE_FORMAT and payload.get("model") == model:
                    out.append(_from_file(name, payload))
                    continue
            if loaded is None:
                from mcdenoise.inference.runtime import Runtime, resolve_device
                from mcdenoise.models.tiers import load_named

                loaded = load_named(model, resolve_device(device))  # the frozen single-frame model
                runtime = Runtime.for_model(loaded.model)
            seq = _compute(name, entry, spp, loaded, runtime)
            with atomic_output(path) as tmp:
                torch.save(_to_file(seq, model), tmp)
            log(f"train-temporal: cached {name} ({entry.frames} frames through the single-frame model)")
            out.append(seq)
    if not out:
        raise McDenoiseError(f"{data}: no sequence of two or more frames" + (f" at {spps} spp" if spps else ""))
    return out
