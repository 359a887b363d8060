"""Make docs/blender.md's hero image: noisy | mcdenoise | OIDN-Accurate | reference, each labelled
with its PSNR against the reference.

Renders the example scene of ``tools/make_example.py`` (a checker-textured floor, a gold
metallic head, a glass sphere, an area and a point light) with Cycles through bpy, Cycles' own
denoiser off: once at a few samples and once as a reference. The noisy render is denoised with
the shipped default model through the path ``mcdenoise denoise`` and the add-on's Denoised
pass take (``prepare_frame``/``run_model``), and with OIDN the way Blender's own denoiser runs it
(*Accurate* prefilter: ``bench.oidn.accurate``). PSNR is measured as ``mcdenoise bench``
measures it (tonemapped at the reference's exposure), printed, and written on the image, so the
doc quotes numbers this command produced from the weights shipped today.

    nice -n 15 .venv/bin/python tools/blender_hero.py       # a few minutes on 2 busy cores

Needs the ``render`` and ``bench`` extras (bpy, pyoidn). The reference is itself a finite-sample
render, so every PSNR here is a lower bound that rises with ``--ref-spp``; the ranking is what the
image shows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_example

LABEL_HEIGHT = 22


def render_pair(out: Path, res: tuple[int, int], spp: int, ref_spp: int) -> tuple[Path, Path]:
    """The noisy render (seed 1) and the reference (seed 2), from one Blender build."""
    import bpy

    make_example.build_scene(bpy, res)
    bpy.context.scene.cycles.use_denoising = False  # the noisy side is the raw render
    bpy.context.scene.render.image_settings.color_depth = "32"
    noisy, ref = out / f"hero_{spp}spp.exr", out / f"hero_{ref_spp}spp.exr"
    make_example.render(bpy, noisy, spp, seed=1)
    make_example.render(bpy, ref, ref_spp, seed=2)
    return noisy, ref


def labelled_strip(images: list[np.ndarray], labels: list[str], exposure: float, gap: int = 4) -> np.ndarray:
    """The images tonemapped with one exposure, left to right, each with its label above it."""
    from mcdenoise.preview import side_by_side
    from PIL import Image, ImageDraw, ImageFont

    strip = side_by_side(images, exposure=exposure, gap=gap)
    canvas = Image.new("RGB", (strip.shape[1], strip.shape[0] + LABEL_HEIGHT), (255, 255, 255))
    canvas.paste(Image.fromarray(strip), (0, LABEL_HEIGHT))
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1: the bitmap font, one size
        font = ImageFont.load_default()
    x = 0
    for image, label in zip(images, labels):
        width = image.shape[1]
        left, _, right, _ = draw.textbbox((0, 0), label, font=font)
        draw.text((x + (width - (right - left)) // 2, 3), label, fill=(0, 0, 0), font=font)
        x += width + gap
    return np.asarray(canvas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "blender_hero.png")
    parser.add_argument("--res", type=int, nargs=2, default=(320, 180), metavar=("W", "H"))
    parser.add_argument("--spp", type=int, default=4, help="samples of the noisy render")
    parser.add_argument("--ref-spp", type=int, default=512, help="samples of the reference render")
    args = parser.parse_args()

    from mcdenoise import hdr
    from mcdenoise.bench.oidn import ACCURATE, accurate
    from mcdenoise.choices import DEFAULT_QUALITY
    from mcdenoise.inference.frames import prepare_frame, run_model
    from mcdenoise.io.exr import read_frame
    from mcdenoise.metrics import psnr_tonemapped
    from mcdenoise.models.tiers import load_quality
    from mcdenoise.preview import save_png

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        noisy_path, ref_path = render_pair(Path(tmp), tuple(args.res), args.spp, args.ref_spp)
        render_s = time.perf_counter() - start
        loaded = load_quality(DEFAULT_QUALITY)
        prepared = prepare_frame(loaded, noisy_path, require_aux=True)
        ours = run_model(loaded, prepared)
        oidn = accurate(prepared.inputs)
        noisy, ref = prepared.frame.color, read_frame(ref_path).color

    exposure = hdr.autoexposure(ref)
    rows = [(f"noisy {args.spp} spp", noisy), (f"mcdenoise {DEFAULT_QUALITY}", ours), (ACCURATE, oidn)]
    scores = {name: psnr_tonemapped(image, ref, exposure) for name, image in rows}
    labels = [f"{name}: {scores[name]:.2f} dB" for name, _ in rows] + [f"reference {args.ref_spp} spp"]
    image = labelled_strip([im for _, im in rows] + [ref], labels, exposure)
    save_png(args.out, image)
    w, h = args.res
    print(f"{w}x{h}, {args.spp} spp, reference {args.ref_spp} spp; rendered in {render_s:.0f} s")
    print(f"PSNR (dB, tonemapped) against the {args.ref_spp}-spp reference:")
    for name, score in scores.items():
        print(f"  {name}: {score:.2f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
