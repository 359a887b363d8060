"""``mcdenoise finetune``: tune a shipped model on the artist's own shot in a budget of minutes.

Thin argument layer over ``mcdenoise.finetune.run``: bpy and torch are imported only once the
job starts, so ``--help`` and argument errors stay instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mcdenoise.choices import DEFAULT_QUALITY, QUALITIES
from mcdenoise.cli import options
from mcdenoise.cli.argtypes import at_least, frame_list
from mcdenoise.errors import McDenoiseError
from mcdenoise.finetune.budget import TARGETS
from mcdenoise.finetune.run import ROTATIONS, Options


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected minutes, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"minutes must be > 0, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("blend", nargs="?", type=Path, metavar="SHOT.blend",
                        help="the shot: a .blend with a camera, rendering with Cycles")
    parser.add_argument("--pairs", nargs=2, type=Path, metavar=("NOISY_DIR", "REFS_DIR"),
                        help="instead of a .blend: noisy EXRs and their references, matched by frame number")
    options.add_output(parser, help="the weights file to write (work files go beside it, in NAME.finetune/)")
    parser.add_argument("--frames", type=frame_list, help="frames of the shot to tune on, e.g. 1-12 (default: the scene's range)")
    parser.add_argument("--minutes", type=_minutes, default=10.0,
                        help="the whole budget, rendering included (default %(default)s)")
    options.add_quality(parser, default=DEFAULT_QUALITY, choices=QUALITIES,
                        help="the shipped model to start from (default %(default)s)")
    parser.add_argument("--spp", type=at_least(1), help="samples of the noisy renders (default: the shot's own)")
    parser.add_argument("--targets", choices=TARGETS, default="ref",
                        help="training targets: high-sample references, or a second noisy render (n2n) (default %(default)s)")
    options.add_render_device(parser, old=())
    options.add_device(parser, default="auto", help="where the network trains: auto, cpu or cuda[:N] (default: auto)")
    parser.add_argument("--threads", type=at_least(0), default=0, help="CPU threads for Cycles and training, 0 = all")
    parser.add_argument("--lr", type=float, default=Options.lr, help="peak learning rate (default %(default)s)")
    parser.add_argument("--rotations", type=int, choices=(1, 2, 4, 8), default=None,
                        help="flips/rotations the tuned model is averaged over when it runs, and when it is checked "
                             f"(default {ROTATIONS}, or the base quality's own if more; 1 = one pass, a quarter of the time)")
    parser.add_argument("--max-steps", type=at_least(0), default=0,
                        help="stop training after this many steps even if minutes are left, for quick checks (default 0: "
                             "the minutes decide)")
    options.add_quiet(parser, help="no progress lines")


def main(args: argparse.Namespace) -> int:
    from mcdenoise.finetune.run import finetune_pairs, finetune_shot, work_dir

    if args.output is None:
        raise McDenoiseError("give the weights file to write with -o/--output (e.g. -o shot.pt)")
    if (args.blend is None) == (args.pairs is None):
        raise McDenoiseError("give a .blend or --pairs NOISY_DIR REFS_DIR (one of the two)")
    if args.pairs and (args.frames or args.spp):
        raise McDenoiseError("--frames and --spp are for a .blend; with --pairs every matched frame is used")
    opts = Options(frames=args.frames, minutes=args.minutes, quality=args.quality, spp=args.spp, targets=args.targets,
                   render_device=args.render_device, device=args.device, threads=args.threads, lr=args.lr,
                   max_steps=args.max_steps, rotations=args.rotations)

    def show(update) -> None:
        if not args.quiet:
            print(f"finetune: {update.text}", file=sys.stderr, flush=True)

    resume = f"run the same command again to resume (work in {work_dir(args.output)})"
    try:
        if args.pairs:
            result = finetune_pairs(*args.pairs, args.output, opts, show)
        else:
            result = finetune_shot(args.blend, args.output, opts, show)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM outside the training loop (cli.Terminated)
        print(f"finetune: stopped; {resume}", file=sys.stderr)
        raise
    if not result.finished:  # SIGTERM inside the training loop, which stops after its step
        print(f"finetune: stopped at step {result.steps} after {result.spent_seconds / 60:.1f} of {args.minutes:g} minutes; "
              f"{resume}", file=sys.stderr)
        return 143
    scores = f"base {result.base_psnr:.2f} dB" + (f", tuned {result.tuned_psnr:.2f} dB ({result.gain_db:+.2f} dB)"
                                                  if result.tuned_psnr is not None else ", no training step fitted the budget")
    if result.kept == "tuned":
        rotations = result.meta.get("self_ensemble", 1)
        runs = (f"; it runs averaged over {rotations} flips/rotations (one pass scored "
                f"{result.meta['tuned_psnr_one_pass']:.2f} dB; tune with --rotations 1 for a quarter of the time)") if rotations > 1 else ""
        print(f"finetune: held-aside frame {result.held_frame}: {scores} after {result.steps} steps "
              f"in {result.spent_seconds / 60:.1f} min -> {result.output}{runs}")
    else:
        print(f"finetune: tuning did not help on held-aside frame {result.held_frame} ({scores}); "
              f"wrote the base {args.quality} model -> {result.output}")
    return 0
