"""``mcdenoise render-suite``: render the benchmark suite's hand-built scenes (``dataset.suite``),
or with ``--shots`` its animated shots (``dataset.sequence_render``).

Thin argument layer over ``mcdenoise.dataset.suite_render``; bpy is imported only once rendering
starts, so ``--help``, ``--list`` and argument errors stay instant and work without the render extra.
"""

from __future__ import annotations

import argparse

from mcdenoise.cli import options
from mcdenoise.cli.argtypes import at_least, frame_list, int_list, names
from mcdenoise.dataset.sequence_render import SHOTS
from mcdenoise.dataset.suite import KINDS, SCENES
from mcdenoise.errors import McDenoiseError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_out(parser, help="suite folder (created if missing)")
    parser.add_argument("--scenes", type=names(SCENES, "suite scene"),
                        help="only these scenes, comma-separated (default: all; see --list)")
    parser.add_argument("--list", action="store_true", help="print the scene table (name, kind, what it shows) and exit")
    parser.add_argument("--shots", type=names(SHOTS, "shot"),
                        help="render these animated shots instead of scenes, comma-separated: frames 1..--frames with "
                             "the Vector pass, for bench --sequence, and <out>/<shot>/<shot>.blend, the shot as a .blend "
                             "for finetune (written again for a finished shot that lacks one) (see --list)")
    parser.add_argument("--frames", type=at_least(2), default=12, help="frames of each --shots shot (default 12)")
    parser.add_argument("--ref-frames", type=frame_list, metavar="FRAMES",
                        help="with --shots: references only on these frames, e.g. 13-24 for a shot fine-tuned on 1-12 "
                             "and scored on the rest (default: every frame; bench --sequence scores the frames that have one)")
    parser.add_argument("--ref2-frames", type=frame_list, metavar="FRAMES",
                        help="with --shots: a second, independent reference on these frames (<shot>_ref2_####.exr), "
                             "so bench --sequence can take the references' own noise out of the flicker figure; "
                             "a finished shot gets just the missing ones (default: none)")
    parser.add_argument("--res", type=at_least(1), default=256, help="square resolution (default 256)")
    parser.add_argument("--spp", type=int_list,
                        help="noisy sample counts, comma-separated (default 1,2,4,8,16; with --shots 4)")
    parser.add_argument("--ref-spp", type=at_least(1), default=1024,
                        help="samples of each of the two references (default 1024)")
    parser.add_argument("--ref-threshold", type=float, default=0.0,
                        help="render the references with adaptive sampling at this noise threshold, up to "
                             "--ref-spp (e.g. 0.005); 0 = exactly --ref-spp in every pixel (default)")
    options.add_render_device(parser)
    parser.add_argument("--threads", type=at_least(0), default=0, help="render threads, 0 = all cores")
    options.add_quiet(parser, old=("--no-progress",), help="no progress bar (for logs)")


def main(args: argparse.Namespace) -> int:
    if args.list:
        for name, scene in SCENES.items():
            print(f"{name:18} {scene.kind:18} {scene.summary}")
        print(f"\n{len(SCENES)} scenes, {len(KINDS)} kinds\n\nanimated shots (--shots):")
        for name, shot in SHOTS.items():
            print(f"{name:18} {shot.scene:18} {shot.summary}")
        return 0
    if args.out is None:
        raise McDenoiseError("give --out DIR (the suite folder), or --list")
    spps = sorted(set(args.spp or ([4] if args.shots else [1, 2, 4, 8, 16])))
    if spps[0] < 1:
        raise McDenoiseError(f"--spp sample counts must be >= 1, got {args.spp}")
    if args.ref_spp <= spps[-1]:
        raise McDenoiseError(f"--ref-spp ({args.ref_spp}) must exceed the largest --spp ({spps[-1]})")
    if args.ref_threshold < 0:
        raise McDenoiseError(f"--ref-threshold must be >= 0, got {args.ref_threshold}")
    if args.ref_frames and not args.shots:
        raise McDenoiseError("--ref-frames is for --shots (every suite scene has its references)")
    if args.ref2_frames and not args.shots:
        raise McDenoiseError("--ref2-frames is for --shots (every suite scene has its two references)")
    from mcdenoise.dataset.render import summary_line

    if args.shots:
        from mcdenoise.dataset.sequence_render import render_shots

        stats = render_shots(args.out, args.shots, frames=args.frames, res=args.res, spps=spps, ref_spp=args.ref_spp,
                             device=args.render_device, threads=args.threads, progress=not args.quiet,
                             ref_frames=args.ref_frames, second_ref_frames=args.ref2_frames)
        print(f"render-suite: {summary_line(stats)} -> {args.out}", flush=True)
        return 0
    from mcdenoise.dataset.suite_render import render_suite

    stats = render_suite(args.out, args.scenes or None, res=args.res, spps=spps, ref_spp=args.ref_spp,
                         ref_threshold=args.ref_threshold, device=args.render_device, threads=args.threads,
                         progress=not args.quiet)
    print(f"render-suite: {summary_line(stats)} -> {args.out}", flush=True)
    return 0
