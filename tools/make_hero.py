"""Make the README's hero image: noisy | denoised | reference, side by side, no captions.

Renders the example scene of ``tools/make_example.py`` with Cycles (bpy) at a few samples and
at a reference sample count, denoises the noisy render with the shipped default model through
the core (the same ``prepare_frame``/``run_model`` path as ``mcdenoise denoise`` and the
add-on's Denoised pass), and writes ``docs/img/blender_auto_denoise.png``. It prints the
PSNR of each image against the reference, measured as ``mcdenoise bench`` measures
(tonemapped at the reference's exposure), and OIDN's when pyoidn is installed, so the text
around the image quotes numbers this command produced.

    nice -n 5 .venv/bin/python tools/make_hero.py          # about 2 minutes on 2 cores

The reference is itself a finite-sample render, so the PSNR of the denoised frame against it
is a lower bound that rises with ``--ref-spp``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

# tools/ is not a package; the scene is defined once, in make_example.py
import make_example


def render_pair(out: Path, res: tuple[int, int], spp: int, ref_spp: int) -> tuple[Path, Path]:
    """Render the example scene noisy (seed 1, as examples/ holds it) and as a reference (seed 2).
    Rendering both here keeps them from the same Blender build, so they differ only in noise."""
    import bpy

    make_example.build_scene(bpy, res)
    noisy, ref = out / f"hero_{spp}spp.exr", out / f"hero_{ref_spp}spp.exr"
    make_example.render(bpy, noisy, spp, seed=1)
    make_example.render(bpy, ref, ref_spp, seed=2)
    return noisy, ref


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "blender_auto_denoise.png")
    parser.add_argument("--res", type=int, nargs=2, default=(320, 240), metavar=("W", "H"))
    parser.add_argument("--spp", type=int, default=4, help="samples of the noisy render")
    parser.add_argument("--ref-spp", type=int, default=256, help="samples of the reference render")
    parser.add_argument("--quality", default=None, help="shipped quality to denoise with (default: the default)")
    args = parser.parse_args()

    from mcdenoise import hdr
    from mcdenoise.choices import DEFAULT_QUALITY
    from mcdenoise.errors import McDenoiseError
    from mcdenoise.inference.frames import prepare_frame, run_model
    from mcdenoise.io.exr import read_frame
    from mcdenoise.metrics import psnr_tonemapped
    from mcdenoise.models.tiers import load_quality
    from mcdenoise.preview import save_png, side_by_side

    quality = args.quality or DEFAULT_QUALITY
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        noisy_path, ref_path = render_pair(Path(tmp), tuple(args.res), args.spp, args.ref_spp)
        render_s = time.perf_counter() - start
        loaded = load_quality(quality)
        prepared = prepare_frame(loaded, noisy_path, require_aux=True)
        start = time.perf_counter()
        denoised = run_model(loaded, prepared)
        denoise_s = time.perf_counter() - start
        noisy, ref = prepared.frame.color, read_frame(ref_path).color
        images = {f"noisy {args.spp} spp": noisy, f"mcdenoise {quality}": denoised}
        try:
            from mcdenoise.bench.oidn import accurate

            images["OIDN albedo+normal (not in the image)"] = accurate(prepared.inputs)
        except McDenoiseError as exc:  # pyoidn (the bench extra) is optional here; say why the row is missing
            print(f"OIDN row skipped: {exc}")

    exposure = hdr.autoexposure(ref)
    save_png(args.out, side_by_side([noisy, denoised, ref], exposure=exposure))
    w, h = args.res
    print(f"{w}x{h}, reference {args.ref_spp} spp; rendered in {render_s:.0f} s, denoised in {denoise_s:.2f} s")
    print(f"PSNR (dB, tonemapped) against the {args.ref_spp}-spp reference:")
    for name, image in images.items():
        print(f"  {name}: {psnr_tonemapped(image, ref, exposure):.2f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
