"""``mcdenoise denoise IN.exr -o OUT.exr``: add a Denoised pass to EXR renders."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from mcdenoise.errors import McDenoiseError
from mcdenoise.passes import DEFAULT_PRESET, PRESETS


def add_pass_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("pass names")
    g.add_argument("--pass-preset", choices=sorted(PRESETS), default=DEFAULT_PRESET, help="AOV naming of the renderer (default: %(default)s)")
    g.add_argument("--color-pass", help="name of the colour pass (overrides the preset)")
    g.add_argument("--albedo-pass", help="name of the albedo pass")
    g.add_argument("--normal-pass", help="name of the normal pass")
    g.add_argument("--layer", help="view layer to denoise when a file has several (default: the first)")
    g.add_argument("--pass-name", default="Denoised", help="name of the pass written (default: %(default)s)")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--weights", type=Path, help="weights file (default: the model shipped with mcdenoise)")
    g.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    g.add_argument("--tile", type=int, default=1024, help="tile size in pixels, 0 = whole frame (default: %(default)s)")
    g.add_argument("--require-aux", action="store_true", help="fail on frames without albedo/normal instead of denoising colour-only")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, help="input EXR file(s)")
    parser.add_argument("-o", "--output", type=Path, help="output EXR (one input only)")
    parser.add_argument("--preview", type=Path, help="also write a side-by-side PNG: noisy | denoised")
    add_model_arguments(parser)
    add_pass_arguments(parser)


def pass_names_from_args(args: argparse.Namespace):
    return PRESETS[args.pass_preset].with_overrides(args.color_pass, args.albedo_pass, args.normal_pass, args.layer)


def main(args: argparse.Namespace) -> int:
    from mcdenoise.model_io import load_model
    from mcdenoise.pipeline import denoise_file
    from mcdenoise.preview import save_png, side_by_side

    if args.output is not None and len(args.inputs) != 1:
        raise McDenoiseError("-o/--output takes one input; for several files use --out-dir")
    loaded = load_model(args.weights, device=args.device)
    names = pass_names_from_args(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for in_path in args.inputs:
            out_path = args.output or in_path.with_name(in_path.stem + "_denoised.exr")
            result = denoise_file(loaded, in_path, out_path, names, args.pass_name, args.tile or None, args.require_aux)
            if args.preview:
                save_png(args.preview, side_by_side([result.frame.color, result.denoised]))
            print(f"{in_path} -> {out_path}")
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return 0
