"""``mcdenoise train-prefilter``: train (or resume) the aux prefilter on a rendered dataset and
write a colour model's weights file with it added.

    mcdenoise train-prefilter --data data/train --out runs/prefilter -o default_accurate.pt
    mcdenoise train-prefilter --out runs/prefilter --no-train --base high -o high_accurate.pt

Re-running the same command resumes from the run's newest checkpoint with its saved
``config.json`` (flags given again override it). See docs/training.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mcdenoise.choices import DEFAULT_QUALITY, UNET_WIDTHS
from mcdenoise.cli import options
from mcdenoise.cli.argtypes import at_least


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Every default is None so that only flags actually given override a resumed run's config.
    parser.add_argument("--data", help="a render-dataset folder (default data/train)")
    options.add_out(parser, dest="run_dir", type=str, help="run folder: config.json, checkpoints/, log/; re-run to resume "
                                                          "(default runs/prefilter)")
    parser.add_argument("--base", help=f"the colour model the prefilter is added to: a quality or a weights file "
                                       f"(default {DEFAULT_QUALITY})")
    options.add_quality(parser, dest="size", choices=tuple(UNET_WIDTHS),
                        help="the prefilter's size: the U-Net width row of that quality (default fast)")
    parser.add_argument("--steps", type=at_least(1), help="total steps = length of the LR schedule (default 3000)")
    parser.add_argument("--minutes", type=float, help="wall-clock budget of this call; a checkpoint is left on stop")
    parser.add_argument("--stop-after", type=int, default=0, help="stop this call after N steps (schedule unchanged)")
    parser.add_argument("--batch", type=at_least(1), help="crops per step (default 16)")
    parser.add_argument("--crop", type=at_least(16), help="crop side in pixels (default 64)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default 1e-3)")
    parser.add_argument("--converged", type=float, help="share of crops moved toward the reference, so that nearly clean "
                                                        "aux (fine texture at 16 spp) pass through (default 0)")
    parser.add_argument("--samples", action=argparse.BooleanOptionalAction, default=None,
                        help="read the render's sample count, so that fine texture at a high count is not taken for "
                             "noise (default on for a new run; a run keeps what it began with)")
    parser.add_argument("--log-every", dest="log_every", type=at_least(1), help="log the loss every N steps (default 100)")
    parser.add_argument("--checkpoint-minutes", dest="checkpoint_minutes", type=float, help="checkpoint interval (default 2)")
    parser.add_argument("--seed", type=int, help="seed of the weights and the crops drawn (default 0)")
    parser.add_argument("--threads", type=at_least(1), help="torch CPU threads (default: torch's)")
    options.add_quiet(parser, dest="progress", help="no progress bar: a log line every --log-every steps instead (for logs)")
    options.add_output(parser, help="the weights file to write: --base with the prefilter added (default RUN/prefiltered.pt)")
    parser.add_argument("--no-train", action="store_true", help="only write the weights file from the newest checkpoint")


def main(args: argparse.Namespace) -> int:
    from mcdenoise.models.tiers import names_quality, weights_path
    from mcdenoise.training import prefilter

    overrides = {k: v for k, v in vars(args).items() if k in prefilter.FIELD_NAMES}
    if args.size is not None:
        overrides["widths"] = UNET_WIDTHS[args.size]
    cfg = prefilter.resolve(args.run_dir or prefilter.PrefilterConfig.run_dir, overrides)
    if not args.no_train:
        s = prefilter.train(cfg, stop_after=args.stop_after)
        print(f"train-prefilter: step {s['step']}/{s['steps']} ({s['train_seconds']:.0f} s of training) on {s['train_scenes']} "
              f"scenes, held out {s['val_scenes']}" + (f"; loss {s['first_loss']:.4f} -> {s['loss']:.4f} this call" if s["loss"] else ""))
        if s["val"]:
            v = s["val"]
            print(f"  held out: albedo PSNR {v['albedo_noisy']:.2f} -> {v['albedo_clean']:.2f} dB, "
                  f"normal {v['normal_noisy']:.2f} -> {v['normal_clean']:.2f} dB")
    out = args.output or Path(cfg.run_dir) / "prefiltered.pt"
    base = args.base or DEFAULT_QUALITY
    info = prefilter.export(cfg.run_dir, weights_path(base) if names_quality(base) else Path(base), out)
    print(f"train-prefilter: wrote {out} ({json.dumps({k: info[k] for k in ('steps', 'widths', 'val')})})")
    return 0
