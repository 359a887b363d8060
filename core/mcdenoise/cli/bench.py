"""``mcdenoise bench``: quality against OIDN on a rendered dataset (``--data DIR``) or on the
benchmark suite (``--suite DIR``), and speed against OIDN on synthetic frames (``--speed``), all
measured in one run on one machine."""

from __future__ import annotations

import argparse

from mcdenoise.errors import McDenoiseError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mcdenoise.bench import quality, speed

    parser.add_argument("--data", type=str, help="dataset folder (render-dataset layout) for the quality benchmark")
    parser.add_argument("--suite", type=str,
                        help="benchmark-suite folder (render-suite layout): per scene and kind against OIDN-Accurate")
    parser.add_argument("--speed", action="store_true", help="run the speed benchmark")
    parser.add_argument("--report", default="bench_report", help="output folder for the markdown report, plot and crops")
    quality.add_arguments(parser)
    speed.add_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from mcdenoise.bench import quality, speed, suite

    if not args.data and not args.suite and not args.speed:
        raise McDenoiseError("nothing to benchmark: give --data DIR (quality), --suite DIR (the benchmark suite) and/or --speed")
    if args.data:
        quality.main(args)
    if args.suite:
        suite.main(args)
    if args.speed:
        speed.main(args)
    return 0
