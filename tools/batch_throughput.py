"""Batch throughput against model-only throughput on a synthetic sequence (issue 7: the batch
pipeline should run at >= 90 % of what the model alone manages).

Model-only time is ``run_model`` on frames already in memory, one after another; batch time is
``run_batch`` wall time for the same frames from disk to disk, reads and writes included. The
frames are written once into ``--dir`` (default /tmp/mcdenoise_1080p) and reused.

    python tools/batch_throughput.py --weights W.pt [--frames 24 --width 1920 --height 1080]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_8k_frame import synthetic_passes  # noqa: E402

from mcdenoise.batch.plan import plan_jobs  # noqa: E402

from mcdenoise.batch.runner import run_batch  # noqa: E402

from mcdenoise.io.write import write_exr  # noqa: E402
from mcdenoise.inference.allocator import keep_freed_memory  # noqa: E402
from mcdenoise.inference.runtime import Runtime  # noqa: E402
from mcdenoise.models.loader import load_model  # noqa: E402
from mcdenoise.inference.frames import prepare_frame, run_model  # noqa: E402
from mcdenoise.batch.sequence import expand_inputs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="weights file (default: the shipped model)")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--tile", type=int, default=0, help="as mcdenoise denoise --tile (default 0: whole frame within --max-memory)")
    parser.add_argument("--max-memory", type=float, default=2.0, help="GiB, as mcdenoise denoise --max-memory")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/mcdenoise_1080p"))
    args = parser.parse_args()

    src = args.dir / "in"
    src.mkdir(parents=True, exist_ok=True)
    for n in range(1, args.frames + 1):
        path = src / f"shot_{n:04d}.exr"
        if not path.exists():
            write_exr(path, synthetic_passes(args.height, args.width, seed=n), multipart=True)
    keep_freed_memory()  # as the CLI does
    loaded = load_model(args.weights, device="cpu")
    runtime = Runtime.for_model(loaded.model, max_memory=int(args.max_memory * 2**30), max_tile=args.tile or None)  # as the CLI builds it
    sources = expand_inputs([str(src / "shot_####.exr")], list(range(1, args.frames + 1)))

    model_seconds = 0.0
    for s in sources:
        prepared = prepare_frame(loaded, s.path, low_memory=True)
        t0 = time.perf_counter()
        run_model(loaded, prepared, runtime)
        model_seconds += time.perf_counter() - t0
    out = args.dir / "out"
    shutil.rmtree(out, ignore_errors=True)
    summary = run_batch(loaded, plan_jobs(sources, out_dir=out, suffix=""), runtime)
    assert len(summary.done) == args.frames, summary.failed

    n = args.frames
    model_fps, batch_fps = n / model_seconds, n / summary.seconds
    print(f"{n} frames {args.width}x{args.height}, tile {args.tile}, {loaded.arch} {loaded.config.get('widths', '')}")
    print(f"model only: {model_seconds:.1f} s = {model_fps:.3f} frames/s")
    print(f"batch (read + model + write, overlapped): {summary.seconds:.1f} s = {batch_fps:.3f} frames/s")
    print(f"batch / model-only throughput: {100 * batch_fps / model_fps:.1f} %")


if __name__ == "__main__":
    main()
