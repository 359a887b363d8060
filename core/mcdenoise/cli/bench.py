"""``mcdenoise bench``: quality against OIDN on a rendered dataset (``--data DIR``) or on the
benchmark suite (``--suite DIR``), and speed against OIDN on synthetic frames (``--speed``), all
measured in one run on one machine."""

from __future__ import annotations

import argparse

from mcdenoise.choices import DEFAULT_DEVICE
from mcdenoise.cli import options
from mcdenoise.cli.argtypes import frame_list
from mcdenoise.errors import McDenoiseError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mcdenoise.bench import quality, speed

    parser.add_argument("--data", type=str, help="dataset folder (render-dataset layout) for the quality benchmark")
    parser.add_argument("--suite", type=str,
                        help="benchmark-suite folder (render-suite layout): per scene and kind against OIDN-Accurate")
    parser.add_argument("--sequence", type=str,
                        help="folder of animated shots (render-suite --shots): per-frame PSNR and flicker of ours "
                             "single-frame and temporal against OIDN plain and OIDN-Accurate (first --models, first --spp)")
    g = parser.add_argument_group("animated shots (--sequence)")
    g.add_argument("--shots", type=lambda text: [n for n in text.split(",") if n],
                   help="only these shots of the --sequence folder, comma-separated (default: every finished shot)")
    g.add_argument("--frames", type=frame_list,
                   help="only these frames of each shot, e.g. 13-24 (default: every frame with a reference)")
    g.add_argument("--weights", type=str, metavar="FILE",
                   help="also score this weights file frame by frame (e.g. a model from 'mcdenoise finetune'), beside "
                        "the shipped model, with its gap to OIDN-Accurate")
    g.add_argument("--temporal-weights", type=str, metavar="FILE",
                   help="ours temporal's learned blend (from 'mcdenoise train-temporal'; default: the shipped one); with "
                        "a learned blend the hand-made blend is scored too")
    parser.add_argument("--speed", action="store_true", help="run the speed benchmark")
    options.add_out(parser, dest="report", type=str, default="bench_report", old=("--report",),
                    help="output folder for the markdown report, plot and crops (default: %(default)s)")
    options.add_device(parser, default=DEFAULT_DEVICE, whole=True, old=("--devices",),
                       help="where --speed times: auto = the CPU, plus the GPU when there is one; cuda = the GPU only; "
                            "cpu (default: %(default)s)")
    options.add_precision(parser, old=("--model-precision",),
                          help="precision our models run at in --data and --suite (default auto: fp32 on CPU, fp16 on CUDA), "
                               "to measure what bf16 costs")
    quality.add_arguments(parser)
    speed.add_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from mcdenoise.bench import quality, speed, suite, temporal

    if not args.data and not args.suite and not args.speed and not args.sequence:
        raise McDenoiseError("nothing to benchmark: give --data DIR (quality), --suite DIR (the benchmark suite), "
                             "--sequence DIR (animated shots) and/or --speed")
    if args.data:
        quality.main(args)
    if args.suite:
        suite.main(args)
    if args.sequence:
        temporal.main(args)
    if args.speed:
        speed.main(args)
    return 0
