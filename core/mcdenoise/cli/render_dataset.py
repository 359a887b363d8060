"""``mcdenoise render-dataset``: render procedural Cycles scenes into the dataset layout, as still
scenes or (``--frames T``) as animated training sequences.

Thin argument layer over ``mcdenoise.dataset.render``; bpy is imported only once rendering
starts, so ``--help`` and argument errors stay instant and work without the render extra.
"""

from __future__ import annotations

import argparse

from mcdenoise.cli import options
from mcdenoise.cli.argtypes import at_least, shard
from mcdenoise.errors import McDenoiseError


def _spp_list(text: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"sample counts must be >= 1, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_out(parser, required=True, help="dataset folder (created if missing)")
    parser.add_argument("--scenes", type=at_least(0), required=True, help="number of scene indices")
    parser.add_argument("--start", type=at_least(0), default=0, help="first scene index (default 0)")
    parser.add_argument("--seed-offset", type=at_least(0), default=0,
                        help="scene seed = offset + index; use e.g. 1000000 for a validation set")
    parser.add_argument("--res", type=at_least(1), default=256, help="square resolution (default 256)")
    parser.add_argument("--spp", type=_spp_list, default=[1, 2, 4, 8, 16],
                        help="noisy sample counts, comma-separated (default 1,2,4,8,16)")
    parser.add_argument("--ref-spp", type=at_least(1), default=256, help="samples of the target (default 256)")
    parser.add_argument("--frames", type=at_least(1), default=1,
                        help="frames per scene: 1 renders still scenes (default); T > 1 renders each scene as an "
                             "animated sequence of T frames with the Vector pass (docs/dataset.md)")
    parser.add_argument("--shard", type=shard, default=(0, 1),
                        help="i/n: render only indices with index %% n == i (default 0/1)")
    options.add_render_device(parser)
    parser.add_argument("--threads", type=at_least(0), default=0, help="render threads, 0 = all cores")
    options.add_quiet(parser, old=("--no-progress",), help="no progress bar (for logs)")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="render the scenes as tasks on a Ray cluster: 'auto', 'local' or the head's host:port; --out "
                             "must be on storage every worker sees at the same path (pip install 'mcdenoise[ray]'; "
                             "docs/farm.md)")


def _render_on_ray(args: argparse.Namespace) -> int:
    """Each scene of this shard a Ray task running the local renderer on one index."""
    import sys  # noqa: PLC0415

    from tqdm import tqdm  # noqa: PLC0415

    from mcdenoise.batch.ray_backend import render_dataset_ray  # noqa: PLC0415
    from mcdenoise.dataset.render import select_indices, summary_line  # noqa: PLC0415

    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise McDenoiseError(f"cannot create dataset folder {args.out}: {exc}") from exc
    indices = select_indices(args.start, args.scenes, args.shard)
    options = {"seed_offset": args.seed_offset, "res": args.res, "spps": args.spp, "ref_spp": args.ref_spp,
               "frames": args.frames, "device": args.render_device, "threads": args.threads}
    with tqdm(total=len(indices), unit="scene", disable=args.quiet, file=sys.stderr, dynamic_ncols=True) as bar:
        stats = render_dataset_ray(args.ray, args.out, indices, options, progress=bar.update)
    i, n = args.shard
    print(f"render-dataset: {summary_line(stats, f' (shard {i}/{n}, on Ray)')} -> {args.out}", flush=True)
    return 0


def main(args: argparse.Namespace) -> int:
    from mcdenoise.dataset.render import render_dataset, summary_line  # noqa: PLC0415

    if args.ref_spp <= max(args.spp):
        raise McDenoiseError(f"--ref-spp ({args.ref_spp}) must exceed the largest --spp ({max(args.spp)})")
    if args.ray is not None:
        return _render_on_ray(args)
    stats = render_dataset(
        args.out, args.scenes, start=args.start, seed_offset=args.seed_offset, res=args.res,
        spps=args.spp, ref_spp=args.ref_spp, shard=args.shard, device=args.render_device,
        threads=args.threads, progress=not args.quiet, frames=args.frames,
    )
    i, n = args.shard
    print(f"render-dataset: {summary_line(stats, f' (shard {i}/{n})')} -> {args.out}", flush=True)
    return 0
