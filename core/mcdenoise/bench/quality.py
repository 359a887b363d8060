"""``mcdenoise bench --data DIR``: quality of our models against Intel OIDN on rendered scenes.

For every finished scene and noisy sample count of a dataset (``render-dataset`` layout) it runs
the noisy input, each of our weights files, OIDN with albedo + normal in Blender's "Accurate"
mode (aux passes prefiltered by OIDN first, then colour with ``cleanAux``) and OIDN colour-only,
all in this one process on this one machine, and measures against the scene's reference:

* PSNR and SSIM on tonemapped images (``preview.tonemap`` with the reference's exposure, the
  curve the crops are shown with, so the numbers match what one sees),
* relMSE on linear HDR radiance, mean of (x - r)^2 / (r^2 + 0.01),
* milliseconds per megapixel of the denoiser call (aux prefiltering included for OIDN).

Writes ``report.md``, ``results.json`` (every frame's numbers), ``psnr_vs_spp.png`` and
``crops_<spp>spp.png`` (noisy | ours | OIDN | reference) into ``--report``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mcdenoise import hdr
from mcdenoise.bench.oidn import accurate as oidn_accurate
from mcdenoise.bench.oidn import colour_only as oidn_colour_only
from mcdenoise.bench.oidn import require as require_oidn
from mcdenoise.choices import DEFAULT_DEVICE, DEFAULT_PRECISION, DEFAULT_QUALITY, QUALITIES
from mcdenoise.cli.argtypes import int_list
from mcdenoise.dataset.layout import list_scenes
from mcdenoise.errors import InputFileError, McDenoiseError
from mcdenoise.io.exr import read_frame
from mcdenoise.inference.denoise import denoise_frame
from mcdenoise.inference.encode import FrameInputs, of_frame
from mcdenoise.inference.runtime import Runtime
from mcdenoise.models.loader import WEIGHTS_DIR
from mcdenoise.metrics import psnr_tonemapped, rel_mse, ssim_tonemapped
from mcdenoise.models.tiers import load_named, names_quality, shipped_qualities
from mcdenoise.preview import save_png, side_by_side

Method = Callable[[FrameInputs], np.ndarray]
NOISY, OIDN_AUX, OIDN_COLOR = "noisy", "OIDN albedo+normal", "OIDN colour-only"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("quality benchmark (--data)")
    g.add_argument("--models", nargs="+",
                   help=f"weights files and/or quality names ({', '.join(QUALITIES)}) to compare "
                        "(default: every shipped quality, then dncnn.pt)")
    g.add_argument("--spp", type=int_list, help="only these sample counts, e.g. 1,4")
    g.add_argument("--max-scenes", type=int, default=0, help="use at most N scenes (0 = all)")
    g.add_argument("--no-oidn", action="store_true", help="skip the OIDN rows (pyoidn not installed)")
    g.add_argument("--crop", type=int, default=96, help="side of the comparison crops in pixels (default 96)")


# -- the denoisers -------------------------------------------------------------------------------

def our_method(spec: str | Path, precision: str = DEFAULT_PRECISION) -> tuple[str, Method]:
    """A weights file, or a quality name (which may add a self-ensemble to a file)."""
    loaded = load_named(spec, DEFAULT_DEVICE)
    label = f"ours: --quality {spec}" if names_quality(spec) else f"ours: {Path(spec).stem} ({loaded.arch})"
    if precision != DEFAULT_PRECISION:
        label += f" [{precision}]"
    runtime = Runtime.for_model(loaded.model, precision=precision)
    return label, lambda f: denoise_frame(loaded, f, runtime=runtime)


def oidn_methods() -> dict[str, Method]:
    """OIDN-Accurate (aux prefiltered, ``clean_aux``) and colour-only, from ``bench.oidn``."""
    require_oidn()
    return {OIDN_AUX: oidn_accurate, OIDN_COLOR: oidn_colour_only}


def default_models() -> list[str | Path]:
    """What ``--models`` defaults to: every shipped quality, then the DnCNN baseline."""
    return [*shipped_qualities(), *sorted(WEIGHTS_DIR.glob("dncnn*.pt"))]


def main_method(methods: list[str]) -> str | None:
    """The one of our rows the crops (and the suite's gap) show: the default quality if run."""
    ours_all = [m for m in methods if m.startswith("ours")]
    return next((m for m in ours_all if f"--quality {DEFAULT_QUALITY}" in m), ours_all[0] if ours_all else None)


def measure(out: np.ndarray, ref: np.ndarray, exposure: float) -> dict[str, float]:
    """Every benchmark's numbers for one output: PSNR and SSIM tonemapped at ``exposure``, relMSE."""
    return {"psnr": psnr_tonemapped(out, ref, exposure), "ssim": ssim_tonemapped(out, ref, exposure),
            "relmse": rel_mse(out, ref)}


# -- the run -------------------------------------------------------------------------------------

def run(data: Path, models: list[str | Path], spps: list[int] | None, max_scenes: int, oidn: bool, log=print,
        precision: str = DEFAULT_PRECISION) -> dict:
    """Measure every method on every (scene, spp); returns {"frames": [...], "summary": {...}}."""
    scenes = [s for s in list_scenes(data) if s.spps]
    if max_scenes:
        scenes = scenes[:max_scenes]
    if not scenes:
        raise InputFileError(f"{data}: no finished scenes to benchmark; render some with 'mcdenoise render-dataset'")
    methods: dict[str, Method] = {NOISY: lambda f: hdr.sanitize(f.color)}
    methods.update(our_method(p, precision) for p in models)
    if oidn:
        methods.update(oidn_methods())
    frames, keep = [], {}
    warmed = False
    for si, scene in enumerate(scenes, 1):
        ref = hdr.sanitize(read_frame(scene.ref).color)
        exposure = hdr.autoexposure(ref)
        for spp in scene.spps:
            if spps and spp not in spps:
                continue
            nf = read_frame(scene.noisy(spp))
            frame = of_frame(nf)
            mp = ref.shape[0] * ref.shape[1] / 1e6
            if not warmed:  # one untimed call each: weight loading and allocator warm-up are not per-frame costs
                for fn in methods.values():
                    fn(frame)
                warmed = True
            for name, fn in methods.items():
                t0 = time.perf_counter()
                out = fn(frame)
                ms = (time.perf_counter() - t0) * 1000.0
                frames.append({
                    "scene": scene.dir.name, "spp": spp, "method": name, **measure(out, ref, exposure),
                    "ms_per_mp": 0.0 if name == NOISY else ms / mp,
                })
                keep.setdefault((spp, scene.dir.name), {})[name] = out
            keep[(spp, scene.dir.name)]["reference"] = ref
        log(f"bench: scene {si}/{len(scenes)} {scene.dir.name} done")
    return {"frames": frames, "summary": summarize(frames), "methods": list(methods), "scenes": [s.dir.name for s in scenes], "images": keep}


def summarize(frames: list[dict]) -> dict[int, dict[str, dict[str, float]]]:
    out: dict[int, dict[str, dict[str, float]]] = {}
    for spp in sorted({f["spp"] for f in frames}):
        out[spp] = {}
        for name in dict.fromkeys(f["method"] for f in frames):
            rows = [f for f in frames if f["spp"] == spp and f["method"] == name]
            if rows:
                out[spp][name] = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr", "ssim", "relmse", "ms_per_mp")}
                out[spp][name]["frames"] = len(rows)
    return out


# -- outputs -------------------------------------------------------------------------------------

def markdown(result: dict, data: Path) -> str:
    summary, methods = result["summary"], result["methods"]
    lines = [
        "# Quality benchmark",
        "",
        f"Dataset `{data}`: {len(result['scenes'])} scenes ({', '.join(result['scenes'][:3])}{', ...' if len(result['scenes']) > 3 else ''}). "
        "PSNR (dB) and SSIM on tonemapped images, relMSE on linear HDR, ms per megapixel of the denoiser call "
        f"on this machine ({torch.get_num_threads()} torch threads). Means over scenes.",
        "",
        "## PSNR (dB) per sample count",
        "",
        "| spp | " + " | ".join(methods) + " |",
        "|---:|" + "---:|" * len(methods),
    ]
    for spp, row in summary.items():
        lines.append(f"| {spp} | " + " | ".join(f"{row[m]['psnr']:.2f}" if m in row else "-" for m in methods) + " |")
    lines += ["", "## All metrics", "", "| spp | method | PSNR | SSIM | relMSE | ms/MP |", "|---:|---|---:|---:|---:|---:|"]
    for spp, row in summary.items():
        for m, v in row.items():
            lines.append(f"| {spp} | {m} | {v['psnr']:.2f} | {v['ssim']:.4f} | {v['relmse']:.4f} | {v['ms_per_mp']:.0f} |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    spps = list(result["summary"])
    for m in result["methods"]:
        ax.plot(spps, [result["summary"][s][m]["psnr"] for s in spps], marker="o", label=m)
    ax.set_xscale("log", base=2)
    ax.set_xticks(spps, [str(s) for s in spps])
    ax.set_xlabel("samples per pixel")
    ax.set_ylabel("PSNR (dB, tonemapped)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def crops(result: dict, spp: int, ours: str | None, size: int, max_rows: int = 4) -> np.ndarray | None:
    """Rows of noisy | ours | OIDN | reference centre crops, one row per scene."""
    columns = [NOISY] + ([ours] if ours else []) + ([OIDN_AUX] if OIDN_AUX in result["methods"] else []) + ["reference"]
    rows = []
    for (s, _scene), images in result["images"].items():
        if s != spp or len(rows) >= max_rows:
            continue
        h, w = images["reference"].shape[:2]
        c = min(size, h, w)
        y, x = (h - c) // 2, (w - c) // 2
        rows.append(side_by_side([images[k][y : y + c, x : x + c] for k in columns], exposure=hdr.autoexposure(images["reference"])))
    if not rows:
        return None
    gap = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([r for row in rows for r in (row, gap)][:-1], axis=0)


def main(args: argparse.Namespace) -> None:
    data, report = Path(args.data), Path(args.report)
    models: list[str | Path] = list(args.models) if args.models else default_models()
    if not models:
        raise McDenoiseError(f"no weights to benchmark in {WEIGHTS_DIR}; pass --models FILE.pt")
    result = run(data, models, args.spp, args.max_scenes, not args.no_oidn, precision=args.precision)
    report.mkdir(parents=True, exist_ok=True)
    (report / "report.md").write_text(markdown(result, data))
    (report / "results.json").write_text(json.dumps({k: v for k, v in result.items() if k != "images"}, indent=1))
    plot(result, report / "psnr_vs_spp.png")
    ours = main_method(result["methods"])
    for spp in result["summary"]:
        image = crops(result, spp, ours, args.crop)
        if image is not None:
            save_png(report / f"crops_{spp}spp.png", image)
    print(markdown(result, data))
    print(f"bench: wrote {report}/report.md, results.json, psnr_vs_spp.png, crops_*spp.png")
