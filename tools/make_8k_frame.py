"""Write a synthetic 8K (7680x4320) multilayer EXR laid out like Blender 5.0's 16-bit output, to
measure ``mcdenoise denoise`` peak memory and time on the largest frames a farm sends.

Blender stores Combined and Denoising Albedo as half and Denoising Normal/Depth as float, one
part per pass; this file does the same so the measurement sees real pixel types. The picture
is smooth shading with Monte-Carlo-like speckle; the content does not matter for memory.

    python tools/make_8k_frame.py /tmp/frame_8k.exr [--width 7680 --height 4320]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mcdenoise.io.write import write_exr


def synthetic_passes(height: int, width: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Blender-named passes, filled in row bands so the generator itself stays small."""
    rng = np.random.default_rng(seed)
    combined = np.empty((height, width, 4), np.float16)
    albedo = np.empty((height, width, 3), np.float16)
    normal = np.empty((height, width, 3), np.float32)
    depth = np.empty((height, width), np.float32)
    xx = np.arange(width, dtype=np.float32)[None, :]
    for y0 in range(0, height, 256):
        yy = np.arange(y0, min(y0 + 256, height), dtype=np.float32)[:, None]
        clean = np.stack([0.5 + 0.4 * np.sin(xx / 70 + 0 * yy), 0.4 + 0.3 * np.cos(yy / 50 + 0 * xx), 0.3 + 0.2 * np.sin((xx + yy) / 90)], -1)
        band = slice(y0, y0 + len(yy))
        combined[band, :, :3] = clean * rng.exponential(1.0, clean.shape).astype(np.float32)
        combined[band, :, 3] = 1.0
        albedo[band] = clean * 0.8
        n = np.stack([np.sin(xx / 110 + 0 * yy), np.cos(yy / 130 + 0 * xx), np.ones_like(clean[..., 0])], -1)
        normal[band] = n / np.linalg.norm(n, axis=-1, keepdims=True)
        depth[band] = 3.0 + yy / height
    return {
        "ViewLayer.Combined": combined,
        "ViewLayer.Denoising Normal": normal,
        "ViewLayer.Denoising Albedo": albedo,
        "ViewLayer.Denoising Depth": depth,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=7680)
    parser.add_argument("--height", type=int, default=4320)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_exr(args.out, synthetic_passes(args.height, args.width, args.seed), multipart=True)
    print(f"wrote {args.out} ({args.width}x{args.height}, {args.out.stat().st_size / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
