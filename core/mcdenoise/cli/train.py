"""``mcdenoise train``: train (or resume) a denoiser on a rendered dataset and export weights.

    mcdenoise train --data data/train --out runs/unet --arch unet --minutes 30
    mcdenoise train --out runs/unet --export core/mcdenoise/weights/default.pt

Settings come from defaults, then ``--config FILE`` (JSON with TrainConfig's field names), then
flags. Re-running the same command resumes from ``RUN/checkpoints/latest``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mcdenoise.choices import (ARCHITECTURES, DEFAULT_ARCH, DEFAULT_DECODER, DEFAULT_DEVICE, DEFAULT_WIDTHS, LOSS_SPACES, TRAIN_PRECISIONS,
                               UNET_DECODERS, UNET_WIDTHS)
from mcdenoise.cli import options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Every default is None so that only flags actually given override the config file.
    parser.add_argument("--config", type=Path, help="JSON file of TrainConfig fields (flags override it)")
    parser.add_argument("--data", help="training dataset folder (render-dataset layout), default data/train")
    # Flags keep TrainConfig's field names as dest (run_dir, widths, progress): config files keep loading.
    options.add_out(parser, dest="run_dir", type=str, old=("--run-dir",),
                    help="run folder: config.json, checkpoints/, log/; re-run to resume (default runs/unet)")
    parser.add_argument("--arch", choices=ARCHITECTURES, help=f"network (default {DEFAULT_ARCH})")
    options.add_quality(parser, dest="widths", choices=tuple(UNET_WIDTHS), old=("--widths",),
                        help=f"model size: the U-Net width row of that quality (default {DEFAULT_WIDTHS})")
    parser.add_argument("--decoder", choices=tuple(UNET_DECODERS),
                        help=f"U-Net decoder: {'; '.join(f'{k} = {v}' for k, v in UNET_DECODERS.items())} "
                             f"(default {DEFAULT_DECODER}; from --init of a mirrored one, it is grown computing what it computed)")
    parser.add_argument("--demodulate", action="store_true", default=None,
                        help="U-Net denoises colour divided by albedo and multiplies it back (keeps texture)")
    parser.add_argument("--inputs", help="input layout: features joined with '+' (default color+albedo+normal; "
                                         "color+albedo+normal+samples also reads the render's sample count)")
    parser.add_argument("--steps", type=int, help="total steps = length of the LR schedule (default 2000)")
    parser.add_argument("--minutes", type=float, help="wall-clock budget of this call; a checkpoint is left on stop")
    parser.add_argument("--stop-after", type=int, default=0, help="stop this call after N steps (schedule unchanged)")
    parser.add_argument("--batch", type=int, help="crops per step (default 8)")
    parser.add_argument("--crop", type=int, help="crop size in pixels (default 128)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default 2e-3)")
    parser.add_argument("--converged", type=float,
                        help="share of crops made nearer convergence than the data (reference + part of the noise), "
                             "so converged detail is left alone (default 0)")
    parser.add_argument("--loss-space", dest="loss_space", choices=LOSS_SPACES,
                        help="where the loss compares: log = the network's HDR space (default), "
                             "display = tonemapped as the benchmarks score")
    parser.add_argument("--warmup", type=int, help="linear LR warm-up steps (default 100)")
    parser.add_argument("--val-every", dest="val_every", type=int, help="validate every N steps (0 = never)")
    parser.add_argument("--log-every", dest="log_every", type=int, help="log loss and LR every N steps (default 20)")
    parser.add_argument("--checkpoint-minutes", dest="checkpoint_minutes", type=float, help="checkpoint interval (default 3)")
    parser.add_argument("--seed", type=int, help="seed of weights init and crop sampling (default 0)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default 2)")
    options.add_device(parser, default=None, help_default=DEFAULT_DEVICE)
    parser.add_argument("--precision", choices=TRAIN_PRECISIONS,
                        help="auto (default): bf16 autocast on CUDA and on CPUs with native bf16 (AVX-512 BF16, AMX; "
                             "2.5x as fast there), fp32 elsewhere")
    parser.add_argument("--workers", type=int, help="threads building crops, prefetched during each step (default: 0 on CPU, up to 8 with CUDA)")
    parser.add_argument("--resident", action="store_true", default=None,
                        help="keep the dataset on the training device and cut crops there (for a GPU: the CPU stops being the limit)")
    parser.add_argument("--init", help="weights file a new run starts from, e.g. the shipped model to fine-tune (ignored when resuming)")
    parser.add_argument("--prefilter", help="weights file whose aux prefilter (train-prefilter) cleans the albedo/normal the model "
                                            "is trained on and is written with it (default: --init's, if it has one)")
    options.add_quiet(parser, dest="progress", old=("--no-progress",), help="no progress bar (for logs)")
    parser.add_argument("--export", type=Path, help="after training, write the model as a weights file here")
    parser.add_argument("--no-train", action="store_true", help="only export the newest checkpoint")


def main(args: argparse.Namespace) -> int:
    from mcdenoise.training import config as config_mod, distributed
    from mcdenoise.training.loop import export, train

    ranks = distributed.from_env()  # under torchrun, rank 0 reports and exports

    overrides = {k: v for k, v in vars(args).items() if k in config_mod.FIELD_NAMES}
    config_file = args.config
    if config_file is None and args.run_dir and (Path(args.run_dir) / "config.json").is_file():
        config_file = Path(args.run_dir) / "config.json"  # resuming: start from the run's own config
    cfg = config_mod.resolve(config_file, overrides)
    if not args.no_train:
        summary = train(cfg, stop_after=args.stop_after)
        val = summary["val"]
        if ranks.leader:
            print(
                f"train: step {summary['step']}/{summary['steps']} ({summary['train_seconds']:.0f} s of training) on "
                f"{summary['train_scenes']} scenes, validated on {summary['val_scenes']}"
                + (f": val PSNR {val['val_psnr']:.2f} dB, SSIM {val['val_ssim']:.4f}" if val else "")
            )
    if args.export and ranks.leader:
        meta = export(cfg.run_dir, args.export)
        print(f"train: exported {args.export} ({json.dumps(meta)})")
    distributed.teardown(ranks)
    return 0
