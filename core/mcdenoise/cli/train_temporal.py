"""``mcdenoise train-temporal``: train (or resume) the learned temporal blend on rendered
training sequences and write its weights file.

    mcdenoise train-temporal --data data/seq --out runs/temporal --minutes 30
    mcdenoise train-temporal --out runs/temporal --no-train -o core/mcdenoise/weights/temporal.pt

Re-running the same command resumes from ``RUN/checkpoints/latest`` with the run's saved
``config.json`` (flags given again override it). See docs/temporal.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mcdenoise.choices import DEFAULT_QUALITY
from mcdenoise.cli import options
from mcdenoise.cli.argtypes import at_least
from mcdenoise.temporal import DEFAULT_WINDOW


def _spps(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give sample counts such as 4 or 2,4,8") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: sample counts are at least 1")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Every default is None so that only flags actually given override a resumed run's config.
    parser.add_argument("--data", help="training sequences (render-dataset --frames layout), default data/seq")
    options.add_out(parser, dest="run_dir", type=str,
                    help="run folder: config.json, cache/, checkpoints/, log/, temporal.pt; re-run to resume "
                         "(default runs/temporal)")
    parser.add_argument("--model", help=f"the frozen single-frame model: a quality or a weights file (default {DEFAULT_QUALITY})")
    parser.add_argument("--spp", dest="spps", type=_spps, help="sample counts to train on, e.g. 2,4,8 (default: every one rendered)")
    parser.add_argument("--window", type=at_least(1), help=f"history frames, as denoise --temporal-warmup (default {DEFAULT_WINDOW})")
    parser.add_argument("--steps", type=at_least(1), help="total steps = length of the LR schedule (default 3000)")
    parser.add_argument("--minutes", type=float, help="wall-clock budget of this call; a checkpoint is left on stop")
    parser.add_argument("--stop-after", type=int, default=0, help="stop this call after N steps (schedule unchanged)")
    parser.add_argument("--batch", type=at_least(1), help="windows per step (default 4)")
    parser.add_argument("--crop", type=at_least(8), help="crop side in pixels; smaller frames are used whole (default 128)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default 2e-3)")
    parser.add_argument("--temporal-weight", dest="temporal_weight", type=float,
                        help="λ: weight of the flicker term against the per-frame term (default 1)")
    parser.add_argument("--channels", dest="width", type=at_least(1), help="channels of the blend's layers (default 16)")
    parser.add_argument("--layers", dest="depth", type=at_least(1), help="3x3 layers of the blend (default 3)")
    parser.add_argument("--no-guides", dest="guides", action="store_false", default=None,
                        help="do not give the blend the frame's albedo and normal")
    parser.add_argument("--log-every", dest="log_every", type=at_least(1), help="log the loss every N steps (default 50)")
    parser.add_argument("--checkpoint-minutes", dest="checkpoint_minutes", type=float, help="checkpoint interval (default 2)")
    parser.add_argument("--seed", type=int, help="seed of the weights and the windows drawn (default 0)")
    parser.add_argument("--threads", type=at_least(1), help="torch CPU threads (default 1: the blend's operations are too small to share)")
    options.add_device(parser, default=None, help_default="cpu")
    options.add_quiet(parser, dest="progress", help="no progress bar: a log line every --log-every steps instead (for logs)")
    options.add_output(parser, help="write the weights file here too (always written to RUN/temporal.pt)")
    parser.add_argument("--no-train", action="store_true", help="only write the newest checkpoint's weights file")


def main(args: argparse.Namespace) -> int:
    from mcdenoise.temporal import train as training

    overrides = {k: v for k, v in vars(args).items() if k in training.FIELD_NAMES}
    cfg = training.resolve(args.run_dir or training.TemporalTrainConfig.run_dir, overrides)
    if not args.no_train:
        s = training.train(cfg, stop_after=args.stop_after)
        rate = s["steps_this_call"] / s["train_seconds"] if s["train_seconds"] else 0.0
        print(f"train-temporal: step {s['step']}/{s['steps']} ({s['train_seconds']:.0f} s of training, {rate:.2f} steps/s) on "
              f"{s['train_sequences']} sequence renders (one sample count each), held out {s['val_sequences']}"
              + (f"; loss {s['first_loss']:.4f} -> {s['loss']:.4f} this call" if s["loss"] is not None else ""))
        for label, numbers in (s["val"] or {}).items():
            print(f"  held out, {label}: PSNR {numbers['psnr']:.2f} dB, flicker {numbers['flicker']:.5f}")
    outputs = [Path(cfg.run_dir) / "temporal.pt", *([args.output] if args.output else [])]
    for out in outputs:
        meta = training.export(cfg.run_dir, out)
    print(f"train-temporal: wrote {', '.join(map(str, outputs))} ({json.dumps({k: meta[k] for k in ('steps', 'window', 'loss')})})")
    return 0
