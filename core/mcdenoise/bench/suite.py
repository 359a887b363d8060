"""``mcdenoise bench --suite DIR``: our models against Intel OIDN on the benchmark suite.

The suite (``dataset.suite``, rendered by ``mcdenoise render-suite``) is hand-built scenes the
training generator never makes, one or more per kind of content, each with two independent
references. For every scene and sample count this runs the noisy input, each of our models,
OIDN plain and OIDN-Accurate (``bench.oidn``) in this one process and scores them against
reference A with the numbers of ``bench --data`` (``quality.measure``: PSNR and SSIM tonemapped
at reference A's exposure, relMSE on linear radiance). Reference B against reference A says how
noisy the references themselves are: a perfect denoiser would score about 3 dB above that PSNR.
Each method is also fed reference B itself, a converged render, which it should return about
unchanged: the "converged input" table shows which methods erase detail that is not noise.

Writes into ``--out``: ``suite.md`` (the tables), ``suite.json`` (every number),
``suite_psnr.png`` (a bar per scene and method at the focus sample count, and our gap to
OIDN-Accurate) and ``suite_crops/<scene>.png`` (noisy | ours | OIDN-Accurate | reference A,
whole frames above, the centre ``--crop`` pixels magnified below). The focus sample count is
4 spp, or the rendered count nearest to it.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from mcdenoise import hdr
from mcdenoise.bench import oidn
from mcdenoise.bench.quality import (
    NOISY,
    Method,
    default_models,
    main_method,
    measure,
    our_method,
)
from mcdenoise.choices import DEFAULT_PRECISION
from mcdenoise.dataset.layout import SuiteEntry, list_suite
from mcdenoise.dataset.suite import KINDS, SCENES
from mcdenoise.errors import InputFileError, McDenoiseError
from mcdenoise.inference.encode import of_frame
from mcdenoise.io.exr import read_frame
from mcdenoise.preview import save_png, side_by_side

FOCUS_SPP = 4
REF_VS_REF = "ref A vs ref B"


def _ordered(entries: list[SuiteEntry]) -> list[SuiteEntry]:
    """Table order of ``dataset.suite.SCENES`` (grouped by kind), unknown names last."""
    order = list(SCENES)
    return sorted(entries, key=lambda e: (order.index(e.name) if e.name in order else len(order), e.name))


def focus_spp(spps: set[int]) -> int:
    """The sample count the crops and the bar chart show: 4, or the rendered count nearest to it."""
    return min(spps, key=lambda s: (abs(math.log2(s / FOCUS_SPP)), s))


def run(suite: Path, models: list[str | Path], spps: list[int] | None = None, with_oidn: bool = True,
        precision: str = DEFAULT_PRECISION, log=print) -> dict:
    """Score every method on every (scene, spp) of a rendered suite; returns the numbers and the
    focus-spp images: {"frames", "refs", "converged", "methods", "scenes", "kinds", "focus_spp",
    "images"}. ``converged`` is each method fed reference B (with its own guides) and scored
    against reference A: a converged input, which a denoiser should return about unchanged."""
    entries = _ordered([e for e in list_suite(suite) if e.spps])
    if not entries:
        raise InputFileError(f"{suite}: no finished suite scenes; render them with 'mcdenoise render-suite --out {suite}'")
    wanted = {s for e in entries for s in e.spps if not spps or s in spps}
    if not wanted:
        raise InputFileError(f"{suite}: no scene was rendered at --spp {','.join(map(str, spps or []))}")
    focus = focus_spp(wanted)
    methods: dict[str, Method] = {NOISY: lambda f: hdr.sanitize(f.color)}
    methods.update(our_method(p, precision) for p in models)
    if with_oidn:
        oidn.require()
        methods.update({oidn.PLAIN: oidn.plain, oidn.ACCURATE: oidn.accurate})
    frames, refs, converged, kinds, images = [], [], [], {}, {}
    for i, e in enumerate(entries, 1):
        kind = kinds[e.name] = json.loads(e.desc.read_text()).get("kind", "unknown")
        ref = hdr.sanitize(read_frame(e.ref).color)
        exposure = hdr.autoexposure(ref)
        ref_b = read_frame(e.ref2)
        converged_in = of_frame(ref_b)
        refs.append({"scene": e.name, "kind": kind, **measure(converged_in.color, ref, exposure)})
        converged += [{"scene": e.name, "kind": kind, "method": name, **measure(fn(converged_in), ref, exposure)}
                      for name, fn in methods.items() if name != NOISY]
        for spp in e.spps:
            if spp not in wanted:
                continue
            nf = read_frame(e.noisy(spp))
            frame = of_frame(nf)
            for name, fn in methods.items():
                out = fn(frame)
                frames.append({"scene": e.name, "kind": kind, "spp": spp, "method": name, **measure(out, ref, exposure)})
                if spp == focus:
                    images.setdefault(e.name, {"reference": ref})[name] = out
        log(f"bench: suite scene {i}/{len(entries)} {e.name} ({kind}) done")
    return {"suite": str(suite), "scenes": [e.name for e in entries], "kinds": kinds, "methods": list(methods),
            "focus_spp": focus, "frames": frames, "refs": refs, "converged": converged, "images": images}


# -- tables ----------------------------------------------------------------------------------------

def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _psnr(result: dict, method: str, spp: int, scenes: list[str]) -> float:
    """Mean PSNR of ``method`` at ``spp`` over ``scenes`` (each scene weighs the same)."""
    return _mean([f["psnr"] for f in result["frames"]
                  if f["method"] == method and f["spp"] == spp and f["scene"] in scenes])


def _ref_psnr(result: dict, scenes: list[str]) -> float:
    return _mean([r["psnr"] for r in result["refs"] if r["scene"] in scenes])


def kind_groups(result: dict) -> list[tuple[str, list[str]]]:
    """(kind, its scenes) in ``KINDS`` order, then ("mean", every scene)."""
    kinds = list(dict.fromkeys([*[k for k in KINDS if k in result["kinds"].values()], *result["kinds"].values()]))
    groups = [(k, [s for s in result["scenes"] if result["kinds"][s] == k]) for k in kinds]
    return [*groups, ("mean", list(result["scenes"]))]


def gaps(result: dict) -> dict[str, dict[int, float]]:
    """Our main model minus OIDN-Accurate (dB), per kind (and "mean") and spp; empty without either."""
    ours = main_method(result["methods"])
    if ours is None or oidn.ACCURATE not in result["methods"]:
        return {}
    spps = sorted({f["spp"] for f in result["frames"]})
    return {k: {s: _psnr(result, ours, s, sc) - _psnr(result, oidn.ACCURATE, s, sc) for s in spps}
            for k, sc in kind_groups(result)}


def _fmt(x: float, signed: bool = False) -> str:
    return "-" if math.isnan(x) else (f"{x:+.2f}" if signed else f"{x:.2f}")


def markdown(result: dict) -> str:
    methods, focus = result["methods"], result["focus_spp"]
    spps = sorted({f["spp"] for f in result["frames"]})
    ours = main_method(methods)
    gap = gaps(result)
    lines = [
        "# Benchmark suite",
        "",
        (f"Suite `{result['suite']}`: {len(result['scenes'])} scenes, {len(set(result['kinds'].values()))} kinds. "
         "PSNR (dB) and SSIM on images tonemapped at reference A's exposure, against reference A. "
         f"`{REF_VS_REF}` is reference B scored the same way: the references' own noise (a perfect "
         "denoiser would score about 3 dB above it). Kind rows are means over that kind's scenes; "
         "the mean row is over all scenes."),
        "",
    ]
    if gap:
        lines += [(f"**Gap to OIDN-Accurate at {focus} spp ({ours}): {_fmt(gap['mean'][focus], True)} dB** "
                   "(mean over scenes; negative = OIDN-Accurate is better)."), ""]
    groups = kind_groups(result)
    head = list(methods) + ([f"gap ({ours} − OIDN-Accurate)"] if gap else []) + [REF_VS_REF]
    lines += [f"## PSNR by kind at {focus} spp", "", "| kind | scenes | " + " | ".join(head) + " |",
              "|---|---:|" + "---:|" * len(head)]
    for kind, scenes in groups:
        cells = [_fmt(_psnr(result, m, focus, scenes)) for m in methods]
        cells += [_fmt(gap[kind][focus], True)] if gap else []
        label = f"**{kind}**" if kind == "mean" else kind
        lines.append(f"| {label} | {len(scenes)} | " + " | ".join(cells + [_fmt(_ref_psnr(result, scenes))]) + " |")
    if gap:
        lines += ["", f"## Gap to OIDN-Accurate by kind and spp (dB, {ours} − OIDN-Accurate)", "",
                  "| kind | " + " | ".join(f"{s} spp" for s in spps) + " |", "|---|" + "---:|" * len(spps)]
        for kind, _ in groups:
            label = f"**{kind}**" if kind == "mean" else kind
            lines.append(f"| {label} | " + " | ".join(_fmt(gap[kind][s], True) for s in spps) + " |")
    lines += _converged_table(result)
    lines += ["", "## Mean over scenes per spp (PSNR dB / SSIM)", "",
              "| method | " + " | ".join(f"{s} spp" for s in spps) + " |", "|---|" + "---:|" * len(spps)]
    for m in methods:
        cells = []
        for s in spps:
            rows = [f for f in result["frames"] if f["method"] == m and f["spp"] == s]
            cells.append(f"{_mean([r['psnr'] for r in rows]):.2f} / {_mean([r['ssim'] for r in rows]):.3f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "## Every scene (PSNR dB / SSIM)", "",
              "| scene | kind | spp | " + " | ".join(head) + " |", "|---|---|---:|" + "---:|" * len(head)]
    by_key = {(f["scene"], f["spp"], f["method"]): f for f in result["frames"]}
    for scene in result["scenes"]:
        ref = next(r for r in result["refs"] if r["scene"] == scene)
        for s in spps:
            if (scene, s, methods[0]) not in by_key:
                continue
            cells = [f"{by_key[scene, s, m]['psnr']:.2f} / {by_key[scene, s, m]['ssim']:.3f}" for m in methods]
            if gap:
                cells.append(_fmt(by_key[scene, s, ours]["psnr"] - by_key[scene, s, oidn.ACCURATE]["psnr"], True))
            cells.append(f"{ref['psnr']:.2f} / {ref['ssim']:.3f}")
            lines.append(f"| {scene} | {result['kinds'][scene]} | {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _converged_table(result: dict) -> list[str]:
    """Each method fed reference B, a converged render: a denoiser must not make it worse than it
    is (the "input" row), which a network that takes fine texture for noise does."""
    rows = result["converged"]
    if not rows:  # no method but the noisy input
        return []
    refs = {r["scene"]: r["psnr"] for r in result["refs"]}
    lines = ["", "## Converged input (reference B denoised, scored against reference A)", "",
             "| method | mean PSNR | change vs the input | scenes made worse by more than 0.5 dB |", "|---|---:|---:|---:|",
             f"| input (reference B) | {_fmt(_mean(list(refs.values())))} | | |"]
    for m in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == m]
        change = [r["psnr"] - refs[r["scene"]] for r in mine]
        worse = [r["scene"] for r, d in zip(mine, change) if d < -0.5]
        lines.append(f"| {m} | {_fmt(_mean([r['psnr'] for r in mine]))} | {_fmt(_mean(change), True)} | "
                     f"{len(worse)} of {len(mine)}{': ' + ', '.join(worse) if worse else ''} |")
    return lines


# -- pictures --------------------------------------------------------------------------------------

def bar_chart(result: dict, path: Path) -> None:
    """PSNR per scene and method at the focus spp (reference noise as a tick), and below it our
    models' gap to OIDN-Accurate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    focus, scenes = result["focus_spp"], result["scenes"]
    shown = [m for m in result["methods"] if m != NOISY]
    ours = [m for m in shown if m.startswith("ours")]
    has_gap = bool(ours) and oidn.ACCURATE in shown
    fig, axes = plt.subplots(2 if has_gap else 1, 1, figsize=(max(6.0, 0.9 * len(scenes) + 2), 7 if has_gap else 4.5),
                             dpi=100, squeeze=False)
    x = np.arange(len(scenes))
    width = 0.8 / max(1, len(shown))
    ax = axes[0][0]
    values = {m: [_psnr(result, m, focus, [s]) for s in scenes] for m in shown}
    for i, m in enumerate(shown):
        ax.bar(x + (i - (len(shown) - 1) / 2) * width, values[m], width, label=m)
    refs = [_ref_psnr(result, [s]) for s in scenes]
    ax.hlines(refs, x - 0.45, x + 0.45, colors="black", linestyles="dashed", label=REF_VS_REF, zorder=3)
    finite = [v for vs in values.values() for v in vs if np.isfinite(v)] + [r for r in refs if np.isfinite(r)]
    if finite:
        ax.set_ylim(min(finite) - 2, max(finite) + 1)
    ax.set_ylabel(f"PSNR at {focus} spp (dB)")
    ax.set_xticks(x, [f"{s}\n({result['kinds'][s]})" for s in scenes], rotation=45, ha="right", fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    if has_gap:
        ax = axes[1][0]
        wg = 0.8 / len(ours)
        for i, m in enumerate(ours):
            g = [a - b for a, b in zip([_psnr(result, m, focus, [s]) for s in scenes], values[oidn.ACCURATE])]
            ax.bar(x + (i - (len(ours) - 1) / 2) * wg, g, wg, label=m)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_ylabel("minus OIDN-Accurate (dB)")
        ax.set_xticks(x, scenes, rotation=45, ha="right", fontsize=7)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def crop_sheet(images: dict[str, np.ndarray], columns: list[str], crop: int) -> np.ndarray:
    """Whole frames side by side, and below them the centre ``crop`` pixels magnified to the
    frame's width (nearest neighbour), all at the reference's exposure."""
    exposure = hdr.autoexposure(images["reference"])
    frames = [images[c] for c in columns]
    h, w = frames[0].shape[:2]
    c = max(1, min(crop, h, w))
    k = max(1, min(h, w) // c)
    y, x = (h - c) // 2, (w - c) // 2
    zoomed = [np.repeat(np.repeat(f[y : y + c, x : x + c], k, axis=0), k, axis=1) for f in frames]
    top, bottom = side_by_side(frames, exposure=exposure), side_by_side(zoomed, exposure=exposure)
    if bottom.shape[1] < top.shape[1]:
        pad = np.full((bottom.shape[0], top.shape[1] - bottom.shape[1], 3), 255, np.uint8)
        bottom = np.concatenate([bottom, pad], axis=1)
    gap = np.full((4, top.shape[1], 3), 255, np.uint8)
    return np.concatenate([top, gap, bottom], axis=0)


def write_report(result: dict, report: Path, crop: int) -> list[Path]:
    """suite.md, suite.json, suite_psnr.png and suite_crops/<scene>.png; returns the paths."""
    report.mkdir(parents=True, exist_ok=True)
    written = [report / "suite.md", report / "suite.json", report / "suite_psnr.png"]
    written[0].write_text(markdown(result))
    numbers = {k: v for k, v in result.items() if k != "images"}
    written[1].write_text(json.dumps({**numbers, "gaps": gaps(result)}, indent=1))
    bar_chart(result, written[2])
    ours = main_method(result["methods"])
    columns = [NOISY, *([ours] if ours else []), *([oidn.ACCURATE] if oidn.ACCURATE in result["methods"] else []),
               "reference"]
    (report / "suite_crops").mkdir(exist_ok=True)
    for scene, images in result["images"].items():
        path = report / "suite_crops" / f"{scene}.png"
        save_png(path, crop_sheet(images, columns, crop))
        written.append(path)
    return written


def main(args: argparse.Namespace) -> None:
    suite, report = Path(args.suite), Path(args.report)
    models: list[str | Path] = list(args.models) if args.models else default_models()
    if not models:
        raise McDenoiseError("no weights to benchmark; pass --models FILE.pt or a quality name")
    result = run(suite, models, args.spp, not args.no_oidn, precision=args.precision)
    write_report(result, report, args.crop)
    text = markdown(result)
    print(text.split("## Gap to OIDN-Accurate by kind")[0].rstrip() + "\n")
    print(f"bench: wrote {report}/suite.md, suite.json, suite_psnr.png, suite_crops/*.png")
