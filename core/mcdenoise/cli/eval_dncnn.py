"""``mcdenoise eval-dncnn``: reproduce the DnCNN paper's Gaussian-denoising PSNR on BSD68.

The protocol follows the authors' MATLAB demo: grey images in [0, 1], additive Gaussian noise
of std sigma/255 (not clipped), output = noisy - predicted noise, and PSNR between the 8-bit
quantised clean and denoised images. The noise comes from a fixed seed so runs repeat exactly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mcdenoise.choices import DEFAULT_DEVICE
from mcdenoise.cli import options
from mcdenoise.errors import InputFileError, WeightsError

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", type=Path, required=True, help="DnCNN weights (authors' state dict or an mcdenoise file)")
    parser.add_argument("--images", type=Path, required=True, help="folder of grey test images (e.g. BSD68)")
    parser.add_argument("--sigma", type=float, default=25.0, help="noise std on the 0-255 scale (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N images (0 = all)")
    options.add_device(parser, default=DEFAULT_DEVICE)
    options.add_verbose(parser, help="print each image's PSNR")


def psnr_uint8(clean: np.ndarray, test: np.ndarray) -> float:
    """PSNR of two [0, 1] images after 8-bit quantisation, as MATLAB's im2uint8 does."""
    a = np.round(np.clip(clean, 0, 1) * 255).astype(np.float64)
    b = np.round(np.clip(test, 0, 1) * 255).astype(np.float64)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def evaluate(weights: Path, images: list[Path], sigma: float, seed: int, device: str = DEFAULT_DEVICE, verbose: bool = False) -> float:
    import torch
    from PIL import Image

    from mcdenoise.models.loader import load_model

    loaded = load_model(weights, device=device)
    if loaded.inputs != "grey":
        raise WeightsError(f"{weights}: eval-dncnn needs a greyscale DnCNN (1 input channel), got inputs={loaded.inputs!r}")
    dev = next(loaded.model.parameters()).device
    rng = np.random.default_rng(seed)
    scores = []
    for path in images:
        clean = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0
        noisy = clean + rng.standard_normal(clean.shape).astype(np.float32) * np.float32(sigma / 255.0)
        with torch.inference_mode():
            out = loaded.model(torch.from_numpy(noisy)[None, None].to(dev))[0, 0].float().cpu().numpy()
        scores.append(psnr_uint8(clean, out))
        if verbose:
            print(f"{path.name}: {scores[-1]:.3f} dB")
    return float(np.mean(scores))


def main(args: argparse.Namespace) -> int:
    if not args.images.is_dir():
        raise InputFileError(f"{args.images}: not a folder of test images")
    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if args.limit:
        images = images[: args.limit]
    if not images:
        raise InputFileError(f"{args.images}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    mean = evaluate(args.weights, images, args.sigma, args.seed, args.device, args.verbose)
    print(f"{args.images.name}: {len(images)} images, sigma={args.sigma:g}, weights={args.weights.name}", file=sys.stderr)
    print(f"mean PSNR: {mean:.3f} dB")
    return 0
