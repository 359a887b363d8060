"""``mcdenoise compare DENOISED... --ref REF``: score renders against a reference with the same
metrics as ``mcdenoise bench``, so a user can check the denoiser on their own frames."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from mcdenoise.cli import options
from mcdenoise.errors import MissingPassError, OutputError
from mcdenoise.io.passes import DEFAULT_PRESET, PRESETS

T = TypeVar("T")

DESCRIPTION = """\
Score EXR renders against a reference, with the metrics of 'mcdenoise bench':
  PSNR (dB) and SSIM on tonemapped images (Reinhard + sRGB at the reference's exposure);
    identical images give PSNR inf (null in --json) and SSIM 1,
  relMSE on linear radiance, mean of (x - r)^2 / (r^2 + 0.01),
  FLIP: LDR-FLIP (NVIDIA flip-evaluator) on the same tonemapped images, 0 = identical;
    needs pip install 'mcdenoise[compare]'.
Each file's colour pass is scored (picked as 'denoise' picks it) unless --pass names another."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.add_argument("files", nargs="+", type=Path, metavar="EXR", help="EXR files to score: plain RGB(A) or Blender multilayer")
    parser.add_argument("--ref", type=Path, required=True, help="reference EXR of the same frame and size (e.g. a high-spp render)")
    parser.add_argument("--pass", dest="pass_name", metavar="NAME",
                        help="pass to score in each file, e.g. Denoised or ViewLayer.Denoised (default: the colour pass)")
    parser.add_argument("--ref-pass", metavar="NAME", help="pass of the reference to score against (default: its colour pass)")
    parser.add_argument("--pass-preset", choices=sorted(PRESETS), default=DEFAULT_PRESET,
                        help="AOV naming the default colour pass follows (default: %(default)s)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write every number to this JSON file")
    options.add_out(parser, dest="images", old=("--images",),
                    help="write per file NAME_vs_ref.png (file | reference), NAME_diff.png (4x the tonemapped "
                         "difference) and NAME_flip.png (FLIP error map) into DIR (created if missing)")
    parser.add_argument("--no-flip", action="store_true", help="skip FLIP, the slowest metric (seconds per 1080p frame)")


def _hinted(option: str, fn: Callable[..., T], *args) -> T:
    """Name the flag that picks another pass, in the CLI's terms."""
    try:
        return fn(*args)
    except MissingPassError as exc:
        raise MissingPassError(f"{exc}; pick one with {option} NAME") from None


def _image_names(paths: list[Path]) -> list[str]:
    """File stems, numbered where two files share one (frames of two shots in two folders)."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        seen[p.stem] = seen.get(p.stem, 0) + 1
        names.append(p.stem if seen[p.stem] == 1 else f"{p.stem}_{seen[p.stem]}")
    return names


def _row(name: str, label: str, values: dict, width: int) -> str:
    flip = "-" if values["flip"] is None else f"{values['flip']:.4f}"
    return f"{name:<{width}}  {label:<18}  {values['psnr']:8.2f}  {values['ssim']:6.4f}  {values['rel_mse']:8.4f}  {flip:>6}"


def _json_number(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else value  # JSON has no infinity


def main(args: argparse.Namespace) -> int:
    from mcdenoise import compare
    from mcdenoise.io.atomic import atomic_output

    if args.json is not None and not args.json.parent.is_dir():  # fail before scoring, not after
        raise OutputError(f"{args.json}: output folder {args.json.parent} does not exist")
    ref = _hinted("--ref-pass", compare.load_reference, args.ref, args.ref_pass, args.pass_preset)
    flip = not args.no_flip and compare.flip_installed()
    if not args.no_flip and not flip:
        print("mcdenoise compare: note: FLIP skipped, flip-evaluator is not installed (pip install 'mcdenoise[compare]')",
              file=sys.stderr)
    width = max(len("mean"), *(len(str(p)) for p in args.files))
    print(f"reference: {ref.path} ({ref.pass_label}), tonemapped at exposure {ref.exposure:.4g}")
    print(f"{'file':<{width}}  {'pass':<18}  {'PSNR dB':>8}  {'SSIM':>6}  {'relMSE':>8}  {'FLIP':>6}")
    scores = []
    for path, name in zip(args.files, _image_names(args.files)):
        s = _hinted("--pass", compare.score, path, ref, args.pass_name, args.pass_preset, flip, args.images, name)
        scores.append(s)
        print(_row(str(path), s.pass_label, {k: getattr(s, k) for k in compare.METRICS}, width), flush=True)
    mean = compare.mean(scores)
    print(_row("mean", f"({len(scores)} file{'s' if len(scores) > 1 else ''})", mean, width))
    if args.json is not None:
        report = {
            "reference": {"path": str(ref.path), "pass": ref.pass_label, "exposure": ref.exposure},
            "files": [{"path": str(s.path), "pass": s.pass_label, **{k: _json_number(getattr(s, k)) for k in compare.METRICS}}
                      for s in scores],
            "mean": {k: _json_number(v) for k, v in mean.items()},
        }
        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps(report, indent=1) + "\n")
    if args.images is not None:
        print(f"compare: wrote the images into {args.images}")
    return 0
