"""``mcdenoise bench --sequence DIR``: flicker and per-frame quality on rendered animated shots.

Shots come from ``mcdenoise render-suite --shots`` (``dataset.sequence_render``): numbered
noisy frames with the Vector pass and a reference per frame. For every shot this runs, frame by
frame in this one process: our model frame by frame ("ours single-frame", what ``denoise
--no-temporal`` writes), the same frames through the temporal history ("ours temporal", the
code ``denoise`` runs on a sequence: :class:`mcdenoise.temporal.history.TemporalHistory`), OIDN
plain and OIDN-Accurate (``bench.oidn``).

Numbers, all on frames tonemapped at one exposure per shot (its first reference's), the curve
of every other benchmark:

* **PSNR** per frame against that frame's reference (``metrics.psnr``);
* **flicker** (issue 20's figure): the mean over consecutive frames of the mean absolute
  ``(out_t - out_t-1) - (ref_t - ref_t-1)``: change between frames that the reference does not
  have. A reference's own noise adds the same floor to every method, so ratios between methods
  are pulled towards 1 when references are few-sample;
* **flicker without the references' noise**, where a shot has a second, independent
  reference on every frame (``render-suite --shots --ref2-frames``): the mean of
  ``(d_out - d_ref) * (d_out - d_ref2)`` (``d``: change from the previous frame), whose
  expectation is the mean square of the change the noiseless image does not have, so it is
  given in RMS beside the RMS against one reference, and the references' own noise as the floor;
* **what the flicker is made of**, where the Vector pass's warp is valid, with ``e`` = output
  − reference: *error changing* on the surface, mean ``|e_t − warp(e_t-1)|`` (a steadier output
  lowers it), and *error moving* with it, mean ``|warp(e_t-1) − e_t-1|`` (an error that sticks
  to a surface still counts as change when the camera moves; only a more accurate frame
  lowers it);
* **warped change**: the mean absolute difference between a frame and the previous frame
  warped into it by the Vector pass, over pixels the warp trusts; needs no reference, and the
  reference's own value (lighting that really changes, plus its noise) is shown beside it.

Writes into ``--out``: ``temporal.md``, ``temporal.json``, ``temporal_<shot>.png`` (a strip of
frames: reference, noisy, OIDN-Accurate, ours single-frame, ours temporal; and below each the
frame-to-frame change, amplified) and ``temporal_<shot>_plot.png`` (PSNR and flicker per frame).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import torch

from mcdenoise import hdr
from mcdenoise.bench import oidn
from mcdenoise.bench.quality import our_method
from mcdenoise.choices import DEFAULT_PRECISION, DEFAULT_QUALITY
from mcdenoise.dataset import layout
from mcdenoise.errors import InputFileError
from mcdenoise.inference.encode import of_frame
from mcdenoise.io.exr import read_frame
from mcdenoise.metrics import psnr
from mcdenoise.preview import save_png, tonemap
from mcdenoise.temporal import DEFAULT_WINDOW, warp
from mcdenoise.temporal.blendnet import HAND_MADE, choose_blend
from mcdenoise.temporal.history import TemporalHistory

NOISY, SINGLE, TEMPORAL, REFERENCE = "noisy", "ours single-frame", "ours temporal", "reference"
HAND_MADE_ROW = "ours temporal, hand-made blend"  # beside a learned blend (temporal.blendnet), to compare in one run
STRIP_FRAMES = 6


def list_shots(root: Path, spp: int) -> list[tuple[str, list[int]]]:
    """Finished shots under ``root`` rendered at ``spp``: (name, frame numbers with both a noisy
    frame and a reference), in name order."""
    shots = []
    for d in sorted(p for p in Path(root).iterdir() if p.is_dir()) if Path(root).is_dir() else []:
        if not layout.suite_desc_path(root, d.name).is_file():
            continue
        found = [int(m.group(1)) for m in (re.fullmatch(rf"{re.escape(d.name)}_{spp:04d}spp_(\d{{4,}})\.exr", f.name)
                                            for f in d.iterdir()) if m]
        frames = sorted(n for n in found if layout.sequence_ref_path(root, d.name, n).is_file())
        if len(frames) >= 2:
            shots.append((d.name, frames))
    return shots


# The figures below read frames already tonemapped (``preview.tonemap`` at the shot's exposure):
# :func:`run_shot` tonemaps each method's frames once and every figure shares them.


def _excess_changes(outs: list[np.ndarray], refs: list[np.ndarray]) -> list[np.ndarray]:
    """Per consecutive pair: ``(out_t - out_t-1) - (ref_t - ref_t-1)``, the change between
    frames that the reference does not have (each flicker figure's input)."""
    return [(outs[t] - outs[t - 1]) - (refs[t] - refs[t - 1]) for t in range(1, len(outs))]


def flicker(outs: list[np.ndarray], refs: list[np.ndarray]) -> list[float]:
    """Per consecutive pair: mean |(out_t - out_t-1) - (ref_t - ref_t-1)| (issue 20's figure)."""
    return [float(np.mean(np.abs(x), dtype=np.float64)) for x in _excess_changes(outs, refs)]


def flicker_noise_free(outs: list[np.ndarray], refs: list[np.ndarray], refs2: list[np.ndarray]) -> list[float]:
    """Per consecutive pair: the mean of ``(d_out - d_ref) * (d_out - d_ref2)``, ``d`` being the
    change from the previous frame. With two independent references their noise cancels in the
    product's mean, so this estimates the mean *square* of the change the noiseless image does
    not have (a single pair may come out negative); its root over the pairs is the flicker
    figure without the references' own noise, in RMS."""
    return [float(np.mean(a * b, dtype=np.float64))
            for a, b in zip(_excess_changes(outs, refs), _excess_changes(outs, refs2))]


def flicker_ms(outs: list[np.ndarray], refs: list[np.ndarray]) -> list[float]:
    """Per consecutive pair: the mean square of issue 20's change, against one reference
    (the RMS twin of :func:`flicker`, noise included)."""
    return [float(np.mean(np.square(x), dtype=np.float64)) for x in _excess_changes(outs, refs)]


Warps = list[tuple[torch.Tensor, torch.Tensor] | None]


def pair_warps(vectors: list[np.ndarray | None]) -> Warps:
    """Per consecutive pair: (sample positions, valid mask) of :func:`mcdenoise.temporal.warp.validity`
    bringing frame t-1 into frame t, or None where either frame has no Vector pass. They depend
    on the shot only, so every method's figures share one list."""
    return [warp.validity(vectors[t], vectors[t - 1]) if vectors[t] is not None and vectors[t - 1] is not None else None
            for t in range(1, len(vectors))]


def flicker_split(outs: list[np.ndarray], refs: list[np.ndarray], warps: Warps) -> tuple[list[float], list[float]]:
    """What the flicker is made of, per consecutive pair, where the warp (:func:`pair_warps`) is
    valid: with ``e`` = output − reference, (mean |e_t − warp(e_t-1)|: error that changed on the
    surface, which a steadier output removes; mean |warp(e_t-1) − e_t-1|: the same error carried
    along with the surface, which counts as change when things move and which only a more
    accurate frame removes)."""
    errors = [o - r for o, r in zip(outs, refs)]
    changing, moving = [], []
    for t, pair in enumerate(warps, start=1):
        if pair is None:
            changing.append(float("nan"))
            moving.append(float("nan"))
            continue
        points, valid = pair
        carried = warp.sample(errors[t - 1], points).numpy()
        mask = valid.numpy()
        changing.append(float(np.abs(errors[t] - carried).mean(axis=-1)[mask].mean(dtype=np.float64)))
        moving.append(float(np.abs(carried - errors[t - 1]).mean(axis=-1)[mask].mean(dtype=np.float64)))
    return changing, moving


def warped_change(outs: list[np.ndarray], warps: Warps) -> list[float]:
    """Per consecutive pair: mean |out_t - warp(out_t-1)| where the warp (:func:`pair_warps`) is
    valid."""
    values = []
    for t, pair in enumerate(warps, start=1):
        if pair is None:
            values.append(float("nan"))
            continue
        points, valid = pair
        diff = np.abs(outs[t] - warp.sample(outs[t - 1], points).numpy()).mean(axis=-1)
        values.append(float(diff[valid.numpy()].mean(dtype=np.float64)))
    return values


def run_shot(root: Path, name: str, frames: list[int], spp: int, single, methods: dict, window: int, log=print,
             blend=None, stabilised: dict[str, str] | None = None) -> dict:
    """Every method on every frame of one shot; returns numbers and the frames themselves.
    ``blend``: ours temporal's (default :func:`~mcdenoise.temporal.blendnet.choose_blend`'s); a
    learned one adds the hand-made blend's row. ``stabilised``: more rows, each the temporal
    path run over one of ``methods``' outputs ({row: method}), as ``denoise --weights`` runs a
    tuned model on a sequence."""
    history = TemporalHistory(window, blend)
    hand = TemporalHistory(window, HAND_MADE) if history.blend is not HAND_MADE else None
    stabilised = stabilised or {}
    more = {row: TemporalHistory(window, history.blend) for row in stabilised}
    rows = [NOISY, SINGLE, TEMPORAL, *([HAND_MADE_ROW] if hand else []), *methods, *stabilised, REFERENCE]
    outs: dict[str, list[np.ndarray]] = {m: [] for m in rows}
    vectors: list[np.ndarray | None] = []
    refs2: list[np.ndarray | None] = []  # second references, where the shot has them
    seconds = {SINGLE: 0.0, TEMPORAL: 0.0}
    for n in frames:
        nf = read_frame(layout.sequence_noisy_path(root, name, spp, n), features=("albedo", "normal", "vector"))
        frame = of_frame(nf)
        colour = frame.color
        t0 = time.perf_counter()
        alone = single(frame)
        t1 = time.perf_counter()
        stable = history.push(n, alone, nf.color, nf.vector, hdr.autoexposure(nf.color), nf.albedo, nf.normal)
        seconds[SINGLE] += t1 - t0
        seconds[TEMPORAL] += time.perf_counter() - t1
        outs[NOISY].append(colour)
        outs[SINGLE].append(alone)
        outs[TEMPORAL].append(stable)
        if hand is not None:
            outs[HAND_MADE_ROW].append(hand.push(n, alone, nf.color, nf.vector, hdr.autoexposure(nf.color)))
        for m, fn in methods.items():
            outs[m].append(fn(frame))
        for row, m in stabilised.items():
            outs[row].append(more[row].push(n, outs[m][-1], nf.color, nf.vector, hdr.autoexposure(nf.color),
                                            nf.albedo, nf.normal))
        outs[REFERENCE].append(hdr.sanitize(read_frame(layout.sequence_ref_path(root, name, n)).color))
        second = layout.sequence_ref_path(root, name, n, second=True)
        refs2.append(hdr.sanitize(read_frame(second).color) if second.is_file() else None)
        vectors.append(nf.vector)
        log(f"bench: {name} frame {n} done")
    exposure = hdr.autoexposure(outs[REFERENCE][0])
    shown = {m: [tonemap(x, exposure) for x in images] for m, images in outs.items()}  # once for every figure
    refs = shown[REFERENCE]
    two = all(r is not None for r in refs2)  # every frame has a second reference: the noise-free figure
    refs2_shown = [tonemap(r, exposure) for r in refs2] if two else []
    warps = pair_warps(vectors)
    numbers = {}
    for m, images in shown.items():
        numbers[m] = {"psnr": [psnr(x, r) for x, r in zip(images, refs)] if m != REFERENCE else [],
                      "flicker": flicker(images, refs) if m != REFERENCE else [],
                      "warped_change": warped_change(images, warps)}
        if m != REFERENCE:
            numbers[m]["flicker_changing"], numbers[m]["flicker_moving"] = flicker_split(images, refs, warps)
        if two and m != REFERENCE:
            numbers[m]["flicker_ms"] = flicker_ms(images, refs)
            numbers[m]["flicker_ms_noise_free"] = flicker_noise_free(images, refs, refs2_shown)
    if two:  # the references' own noise in the same units: half the mean square of their difference
        numbers[REFERENCE]["flicker_ms"] = [v / 2 for v in flicker_ms(refs2_shown, refs)]
    return {"shot": name, "frames": frames, "spp": spp, "exposure": exposure, "numbers": numbers,
            "second_reference": two,
            "seconds_per_frame": {k: v / len(frames) for k, v in seconds.items()}, "images": outs}


def select(shots: list[tuple[str, list[int]]], root: Path, spp: int, names: list[str] | None = None,
           frames: list[int] | None = None) -> list[tuple[str, list[int]]]:
    """The shots ``names`` (default: all) with only ``frames`` (default: all); a shot or frame
    that is not there is refused, naming what is."""
    found = dict(shots)
    missing = [n for n in names or () if n not in found]
    if missing:
        raise InputFileError(f"{root}: no finished shot {', '.join(missing)} with {spp}-spp frames; "
                             f"found: {', '.join(found) or 'none'}")
    chosen = [(n, found[n]) for n in names] if names else shots
    if frames is None:
        return chosen
    for name, have in chosen:
        absent = sorted(set(frames) - set(have))
        if absent:
            raise InputFileError(f"{root}: shot {name} has no {spp}-spp frame and reference for frame(s) "
                                 f"{', '.join(map(str, absent[:8]))}; it has {have[0]}-{have[-1]}")
    return [(name, [f for f in have if f in frames]) for name, have in chosen]


def run(root: Path, model: str | Path = DEFAULT_QUALITY, spp: int = 4, with_oidn: bool = True,
        precision: str = DEFAULT_PRECISION, window: int = DEFAULT_WINDOW, log=print, names: list[str] | None = None,
        frames: list[int] | None = None, weights: str | Path | None = None,
        temporal_weights: str | Path | None = None) -> dict:
    """Every shot (or ``names``, on ``frames``); ``weights``: a tuned model scored frame by frame
    beside ours, with its gaps per shot (``single_frame_gaps``: issue 19's measurement)."""
    shots = select(list_shots(root, spp), root, spp, names, frames)
    if not shots:
        raise InputFileError(f"{root}: no finished shot with {spp}-spp frames; render one with "
                             f"'mcdenoise render-suite --out {root} --shots mixed_dolly'")
    label, single = our_method(model, precision)
    blend = choose_blend(temporal_weights)  # ours temporal's blend, as denoise chooses it
    methods = {}
    tuned = None
    stabilised = {}
    if weights is not None:
        tuned = f"tuned ({Path(weights).name})"
        methods[tuned] = our_method(weights, precision)[1]
        stabilised[tuned_temporal(tuned)] = tuned
    if with_oidn:
        oidn.require()
        methods |= {oidn.PLAIN: oidn.plain, oidn.ACCURATE: oidn.accurate}
    results = [run_shot(root, name, shot_frames, spp, single, methods, window, log, blend, stabilised)
               for name, shot_frames in shots]
    if tuned is not None:
        for shot in results:
            shot["single_frame_gaps"] = single_frame_gaps(shot, tuned)
    return {"root": str(root), "model": label, "window": window, "spp": spp, "tuned": tuned,
            "temporal_blend": blend.label,
            "methods": [NOISY, SINGLE, TEMPORAL, *([HAND_MADE_ROW] if blend is not HAND_MADE else []), *methods,
                        *stabilised],
            "shots": results}


# -- report ----------------------------------------------------------------------------------------

def _mean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def headline(shot: dict) -> dict[str, float]:
    """The two numbers that matter: ours temporal's flicker over OIDN-Accurate's, and its mean
    PSNR minus ours single-frame's."""
    n = shot["numbers"]
    out = {"psnr_temporal_minus_single": _mean(n[TEMPORAL]["psnr"]) - _mean(n[SINGLE]["psnr"]),
           "flicker_temporal_over_single": _mean(n[TEMPORAL]["flicker"]) / _mean(n[SINGLE]["flicker"])}
    if oidn.ACCURATE in n:
        out["flicker_temporal_over_oidn_accurate"] = _mean(n[TEMPORAL]["flicker"]) / _mean(n[oidn.ACCURATE]["flicker"])
        if "flicker_ms_noise_free" in n[TEMPORAL]:
            base = rms(n[oidn.ACCURATE]["flicker_ms_noise_free"])  # 0 only where the references are all noise
            out["noise_free_flicker_temporal_over_oidn_accurate"] = (
                rms(n[TEMPORAL]["flicker_ms_noise_free"]) / base if base > 0 else float("nan"))
    return out


def rms(mean_squares: list[float]) -> float:
    """The root of the mean of per-pair mean squares (0 where noise made the estimate negative)."""
    return float(np.sqrt(max(_mean(mean_squares), 0.0)))


def tuned_temporal(tuned: str) -> str:
    """The row of a tuned model run through the temporal path."""
    return f"{tuned}, temporal"


def single_frame_gaps(shot: dict, tuned: str) -> dict[str, float]:
    """Mean PSNR over the shot's frames of the tuned model run frame by frame, minus ours
    single-frame (the shipped model) and minus each OIDN: issue 19 scores single frames. Also
    the tuned model through the temporal path: its PSNR and its flicker over OIDN-Accurate's."""
    n = shot["numbers"]
    out = {"tuned": _mean(n[tuned]["psnr"]), "tuned_minus_base": _mean(n[tuned]["psnr"]) - _mean(n[SINGLE]["psnr"])}
    for key, method in (("tuned_minus_oidn", oidn.PLAIN), ("tuned_minus_oidn_accurate", oidn.ACCURATE)):
        if method in n:
            out[key] = _mean(n[tuned]["psnr"]) - _mean(n[method]["psnr"])
    stable = n.get(tuned_temporal(tuned))
    if stable is not None:
        out["tuned_temporal"] = _mean(stable["psnr"])
        if oidn.ACCURATE in n:
            out["tuned_temporal_flicker_over_oidn_accurate"] = _mean(stable["flicker"]) / _mean(n[oidn.ACCURATE]["flicker"])
    return out


def markdown(result: dict, per_frame: bool = True) -> str:
    """The report; ``per_frame=False`` leaves out the per-frame PSNR tables (the console's summary)."""
    lines = ["# Temporal benchmark", "",
             (f"Shots in `{result['root']}` at {result['spp']} spp; model {result['model']}; temporal history of "
              f"{result['window']} frames, {result.get('temporal_blend', 'hand-made blend')}. PSNR (dB) per frame against that frame's reference and flicker "
              "(mean |(out_t − out_t−1) − (ref_t − ref_t−1)|), both on frames tonemapped at the shot's first "
              "reference's exposure; what it is made of, where the Vector pass's warp is valid, with e = out − ref: "
              "error changing on the surface, mean |e_t − warp(e_t−1)| (a steadier output lowers it), and error "
              "moving with it, mean |warp(e_t−1) − e_t−1| (only a more accurate frame lowers it); warped change: "
              "mean |out_t − warp(out_t−1)| where the warp is valid (the reference row is the floor: real "
              "lighting change plus the reference's noise)."), ""]
    for shot in result["shots"]:
        n, h = shot["numbers"], headline(shot)
        lines += [f"## {shot['shot']} ({len(shot['frames'])} frames)", ""]
        if "flicker_temporal_over_oidn_accurate" in h:
            lines.append(f"**Flicker, ours temporal / OIDN-Accurate: {h['flicker_temporal_over_oidn_accurate']:.2f}×**; "
                         f"ours temporal / ours single-frame: {h['flicker_temporal_over_single']:.2f}×.  ")
        if "noise_free_flicker_temporal_over_oidn_accurate" in h:
            lines.append(f"**Without the references' noise (RMS, two independent references a frame): ours temporal / "
                         f"OIDN-Accurate: {h['noise_free_flicker_temporal_over_oidn_accurate']:.2f}×.**  ")
        if "single_frame_gaps" in shot:
            g, span = shot["single_frame_gaps"], f"frames {shot['frames'][0]}-{shot['frames'][-1]}"
            oidn_gap = (f"tuned − OIDN-Accurate: {g['tuned_minus_oidn_accurate']:+.2f} dB, "
                        if "tuned_minus_oidn_accurate" in g else "")
            lines.append(f"**Single-frame PSNR on {span}, {result['tuned']}: {g['tuned']:.2f} dB; {oidn_gap}"
                         f"tuned − ours single-frame: {g['tuned_minus_base']:+.2f} dB** (every model frame by frame, "
                         "no temporal history: what issue 19 measures).  ")
            if "tuned_temporal_flicker_over_oidn_accurate" in g:
                lines.append(f"**The tuned model through the temporal path: {g['tuned_temporal']:.2f} dB, flicker "
                             f"{g['tuned_temporal_flicker_over_oidn_accurate']:.2f}× OIDN-Accurate's** "
                             "(what `denoise --weights` writes for a sequence).  ")
        two = shot.get("second_reference", False)
        lines += [f"**PSNR, ours temporal − ours single-frame: {h['psnr_temporal_minus_single']:+.2f} dB** (mean over frames).",
                  "", "| method | mean PSNR | min PSNR | flicker | error changing | error moving | warped change |"
                  + (" flicker RMS | flicker RMS, noise-free |" if two else ""),
                  "|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if two else "")]
        for m in result["methods"]:
            lines.append(f"| {m} | {_mean(n[m]['psnr']):.2f} | {min(n[m]['psnr']):.2f} | {_mean(n[m]['flicker']):.5f} | "
                         f"{_mean(n[m]['flicker_changing']):.5f} | {_mean(n[m]['flicker_moving']):.5f} | "
                         f"{_mean(n[m]['warped_change']):.5f} |"
                         + (f" {rms(n[m]['flicker_ms']):.5f} | {rms(n[m]['flicker_ms_noise_free']):.5f} |" if two else ""))
        lines.append(f"| reference | | | | | | {_mean(n[REFERENCE]['warped_change']):.5f} |"
                     + (f" {rms(n[REFERENCE]['flicker_ms']):.5f} (its own noise) | |" if two else ""))
        if per_frame:
            lines += ["", "PSNR per frame:", "", "| frame | " + " | ".join(result["methods"]) + " |",
                      "|---:|" + "---:|" * len(result["methods"])]
            for i, f in enumerate(shot["frames"]):
                lines.append(f"| {f} | " + " | ".join(f"{n[m]['psnr'][i]:.2f}" for m in result["methods"]) + " |")
        s = shot["seconds_per_frame"]
        lines += ["", (f"Time per frame: our network {s[SINGLE]:.3f} s, the temporal step {s[TEMPORAL]:.3f} s more "
                       f"({100 * s[TEMPORAL] / s[SINGLE]:.0f} %)."), ""]
    return "\n".join(lines) + "\n"


def strip(shot: dict, rows: list[str], frames: int = STRIP_FRAMES, gap: int = 2) -> np.ndarray:
    """Rows of frames (the first ``frames``), each row followed by its frame-to-frame change
    |x_t − x_t−1| ×4 (the first column blank): flicker shows as speckle in the change rows."""
    images, exposure = shot["images"], shot["exposure"]
    tiles: list[list[np.ndarray]] = []
    for name in rows:
        seq = [tonemap(x, exposure) for x in images[name][:frames]]
        tiles.append(seq)
        tiles.append([np.zeros_like(seq[0])] + [np.clip(4 * np.abs(seq[t] - seq[t - 1]), 0, 1) for t in range(1, len(seq))])
    h, w = tiles[0][0].shape[:2]
    canvas = np.full((len(tiles) * (h + gap), len(tiles[0]) * (w + gap), 3), 255, np.uint8)
    for r, row in enumerate(tiles):
        for c, im in enumerate(row):
            canvas[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = (np.clip(im, 0, 1) * 255 + 0.5).astype(np.uint8)
    return canvas


def plot(shot: dict, methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, frames = shot["numbers"], shot["frames"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    for m in methods:
        if m == NOISY:
            continue
        a.plot(frames, n[m]["psnr"], marker="o", ms=3, label=m)
        b.plot(frames[1:], n[m]["flicker"], marker="o", ms=3, label=m)
    a.set(xlabel="frame", ylabel="PSNR (dB)", title=shot["shot"])
    b.set(xlabel="frame", ylabel="flicker vs reference", title="flicker (lower is steadier)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(result: dict, report: Path) -> list[Path]:
    report.mkdir(parents=True, exist_ok=True)
    written = [report / "temporal.md", report / "temporal.json"]
    written[0].write_text(markdown(result))
    shots = [{k: v for k, v in s.items() if k != "images"} | {"headline": headline(s)} for s in result["shots"]]
    written[1].write_text(json.dumps({**result, "shots": shots}, indent=1))
    rows = [REFERENCE, NOISY, *([oidn.ACCURATE] if oidn.ACCURATE in result["methods"] else []), SINGLE,
            *([HAND_MADE_ROW] if HAND_MADE_ROW in result["methods"] else []), TEMPORAL]
    for shot in result["shots"]:
        path = report / f"temporal_{shot['shot']}.png"
        save_png(path, strip(shot, rows))
        plot(shot, result["methods"], report / f"temporal_{shot['shot']}_plot.png")
        written += [path, report / f"temporal_{shot['shot']}_plot.png"]
    return written


def main(args: argparse.Namespace) -> None:
    report = Path(args.report)
    model = args.models[0] if args.models else DEFAULT_QUALITY
    spp = args.spp[0] if args.spp else 4
    result = run(Path(args.sequence), model, spp, not args.no_oidn, precision=args.precision,
                 names=args.shots, frames=args.frames, weights=args.weights,
                 temporal_weights=getattr(args, "temporal_weights", None))
    write_report(result, report)
    print(markdown(result, per_frame=False))
    print(f"bench: wrote {report}/temporal.md, temporal.json, temporal_<shot>.png, temporal_<shot>_plot.png")
