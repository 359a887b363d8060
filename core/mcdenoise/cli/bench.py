"""``mcdenoise bench``: quality against OIDN on a rendered dataset (``--data DIR``) and speed
against OIDN on synthetic frames (``--speed``), both measured in one run on one machine."""

from __future__ import annotations

import argparse

from mcdenoise.errors import McDenoiseError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mcdenoise.bench import quality, speed

    parser.add_argument("--data", type=str, help="dataset folder (render-dataset layout) for the quality benchmark")
    parser.add_argument("--speed", action="store_true", help="run the speed benchmark")
    parser.add_argument("--report", default="bench_report", help="output folder for the markdown report, plot and crops")
    quality.add_arguments(parser)
    speed.add_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from mcdenoise.bench import quality, speed

    if not args.data and not args.speed:
        raise McDenoiseError("nothing to benchmark: give --data DIR (quality) and/or --speed")
    if args.data:
        quality.main(args)
    if args.speed:
        speed.main(args)
    return 0
