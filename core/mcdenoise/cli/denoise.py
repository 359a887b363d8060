"""``mcdenoise denoise IN.exr -o OUT.exr``: add a Denoised pass to EXR renders.

Also the farm form: ``mcdenoise denoise 'shot_####.exr' --frames 1001-1240 --out out
--shard 0/4 --keep-going``. Exit status: 0 all frames done or skipped, 1 some frames failed
with ``--keep-going``, 2 the job stopped on an error.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO
from pathlib import Path

from mcdenoise.choices import DEFAULT_DEVICE, DEFAULT_MAX_MEMORY_GIB, DEFAULT_QUALITY, PRECISION_DTYPES, QUALITIES, spoken
from mcdenoise.cli import options
from mcdenoise.cli.argtypes import at_least, frame_list, memory_gib, png_path, shard, tile_side
from mcdenoise.errors import McDenoiseError
from mcdenoise.io.passes import DEFAULT_PRESET, PRESETS
from mcdenoise.temporal import DEFAULT_WINDOW


def add_pass_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("pass names")
    g.add_argument("--pass-preset", choices=sorted(PRESETS), default=DEFAULT_PRESET, help="AOV naming of the renderer (default: %(default)s)")
    g.add_argument("--color-pass", help="name of the colour pass (overrides the preset)")
    g.add_argument("--albedo-pass", help="name of the albedo pass")
    g.add_argument("--normal-pass", help="name of the normal pass")
    g.add_argument("--layer", help="view layer to denoise when a file has several (default: the first)")
    g.add_argument("--view", help="view of a stereo (multi-view) file to denoise, e.g. left (default: every view, each from its own passes)")
    g.add_argument("--pass-name", default="Denoised", help="name of the pass written (default: %(default)s)")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--weights", type=Path, help="weights file (default: the model shipped with mcdenoise)")
    options.add_quality(g, help=f"shipped model size: {spoken(QUALITIES)} ({DEFAULT_QUALITY} is the default model); see docs/speed.md")
    options.add_device(g, default=DEFAULT_DEVICE)
    options.add_precision(g, help="compute precision: auto = fp16 on CUDA, fp32 on CPU; bf16 on CPU is about 2x faster where the CPU "
                                  "has native bf16 (AVX-512 BF16 / AMX) and slightly changes the result; see docs/speed.md")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA only; pays off on long sequences)")
    g.add_argument("--tile", type=tile_side, default=0,
                   help="largest tile side in pixels (same result, less memory, margins computed twice); 0 = the whole frame. "
                        "Either is cut to the largest tile that fits --max-memory on CPU or free memory on a GPU (default: %(default)s)")
    g.add_argument("--require-aux", action="store_true", help="fail on frames without albedo/normal instead of denoising colour-only")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="EXR files, folders, globs ('renders/*.exr') or frame patterns (shot_####.exr, shot_%%04d.exr)")
    options.add_output(parser, help="output EXR (one input only; overwritten if it exists)")
    parser.add_argument("--preview", type=png_path, help="also write a side-by-side PNG: noisy | denoised (one input only)")
    g = parser.add_argument_group("sequences")
    g.add_argument("--frames", type=frame_list, help="frames of a pattern: 1001-1240, 1-100x2, 1,5,9-12 (default: first to last on disk)")
    options.add_out(g, dest="out_dir", old=("--out-dir",),
                    help="write outputs into this folder (created if missing), same file names plus --suffix")
    g.add_argument("--suffix", help="added to each output's file name (default: _denoised, or none with --out)")
    g.add_argument("--shard", type=shard, default=(0, 1),
                   help="denoise only frames with index %% n == i of the frame list; on the temporal path the i-th of n "
                        "contiguous blocks, warmed up with --temporal-warmup frames before it (default: 0/1)")
    g.add_argument("--no-temporal", action="store_true",
                   help="denoise each frame alone, even consecutive frames of a pattern with a Vector pass (which by default "
                        "are stabilised with the previous frames; see docs/temporal.md)")
    g.add_argument("--temporal-warmup", type=at_least(0), default=DEFAULT_WINDOW, metavar="N",
                   help="history frames each temporal output uses; a shard or a resumed run first denoises the N frames "
                        "before it without writing them, so its frames match one whole run exactly (default: %(default)s)")
    g.add_argument("--temporal-weights", type=Path, metavar="FILE",
                   help="the learned temporal blend to stabilise with (from 'mcdenoise train-temporal'; default: the shipped "
                        "one, or the hand-made blend when none is shipped; -v says which)")
    g.add_argument("--overwrite", action="store_true", help="denoise again even where a complete output exists (default: skip it)")
    g.add_argument("--keep-going", action="store_true", help="carry on past bad or missing frames; exit 1 at the end if any failed")
    options.add_quiet(g, help="no progress bar or per-frame lines; errors and the summary only")
    options.add_verbose(g, help="also one line per run: the passes, model, device, precision and tile it uses")
    g.add_argument("--max-memory", type=memory_gib, default=DEFAULT_MAX_MEMORY_GIB, metavar="GIB",
                   help="on CPU, use smaller tiles for frames too large for this many GiB (an 8K frame); 0 = no limit (default: %(default)s)")
    g.add_argument("--stats", action="store_true", help="print wall time, frames/s and the model's share of the time")
    g = parser.add_argument_group("cluster (pip install 'mcdenoise[ray]'; see docs/farm.md)")
    g.add_argument("--ray", metavar="ADDRESS",
                   help="send the frames to a Ray cluster's workers: 'auto' (the cluster this machine belongs to), "
                        "'local' (start one here) or the head's host:port; inputs and outputs must be on storage every "
                        "worker sees at the same path")
    g.add_argument("--ray-workers", type=at_least(1), metavar="N",
                   help="workers to use, each loading the model once (default: one per GPU of the cluster, else per CPU)")
    add_model_arguments(parser)
    add_pass_arguments(parser)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare as written
        return a.absolute() == b.absolute()


def runtime_from_args(args: argparse.Namespace, model):
    """The :class:`~mcdenoise.inference.runtime.Runtime` that ``--precision``, ``--compile``,
    ``--tile`` and ``--max-memory`` ask for, on the device the model loaded on (``--device``).
    Building it refuses impossible options before any frame is read, not as a failure per frame."""
    from mcdenoise.inference.runtime import Runtime

    return Runtime.for_model(model, precision=args.precision, max_memory=int(args.max_memory * 2**30),
                             max_tile=args.tile or None, compile=args.compile)


def pass_names_from_args(args: argparse.Namespace):
    return PRESETS[args.pass_preset].with_overrides(args.color_pass, args.albedo_pass, args.normal_pass, args.layer, args.view)


def warn_slow_bf16(runtime) -> str | None:
    """The warning for ``--precision bf16`` on a CPU that only emulates bf16 (slower than fp32)."""
    import torch

    from mcdenoise.inference.runtime import cpu_has_native_bf16

    if runtime.device.type != "cpu" or runtime.dtype != torch.bfloat16 or cpu_has_native_bf16():
        return None
    return ("--precision bf16: this CPU has no native bf16 (AVX-512 BF16 or AMX), so bf16 is emulated and "
            "slower than fp32; drop --precision for fp32")


def run_line(args: argparse.Namespace, loaded, runtime, prepared) -> str:
    """``-v``: what a run used, read off its first frame: layer and passes, model, device,
    precision and tile."""
    frame = prepared.frame
    passes = ", ".join(f"{feature} {name!r}" for feature, name in frame.passes.items())
    model = (f"weights {args.weights}" if args.weights is not None
             else f"quality {args.quality or DEFAULT_QUALITY} ({loaded.path.name if loaded.path else 'shipped'})")
    precision = next((p for p, dtype in PRECISION_DTYPES.items() if f"torch.{dtype}" == str(runtime.dtype)), str(runtime.dtype))
    tile = runtime.tile_for(loaded.model, prepared.inputs)
    return (f"run: layer {frame.layer or '(none)'}" + (f", view {frame.view}" if frame.view else "") + f", passes {passes}"
            + ("" if prepared.used_aux else " (colour only)")
            + f"; model {model}; device {runtime.device}; precision {precision}; "
            + (f"tile {tile} px" if tile else "tile: whole frame"))


def skip_line(summary) -> str | None:
    """Why frames were skipped: their output is already there (``-o`` always overwrites)."""
    if not summary.skipped:
        return None
    first = summary.skipped[0].output
    if len(summary.skipped) == 1:
        return f"skipped: {first} exists and is complete; --overwrite to denoise again"
    return (f"skipped {len(summary.skipped)} frames: their outputs exist and are complete (e.g. {first}); "
            "--overwrite to denoise them again")


def _run_on_ray(args: argparse.Namespace, jobs, names, temporal, sequence, suffix: str, log, bar):
    """The batch on a Ray cluster (:mod:`mcdenoise.batch.ray_backend`): one frame per task, or
    on the temporal path one contiguous block per worker, warmed up as a ``--shard`` is."""
    from mcdenoise.batch import ray_backend
    from mcdenoise.cli import wording
    from mcdenoise.temporal import plan as temporal_plan

    overwrite = args.overwrite or args.output is not None
    spec = ray_backend.ModelSpec(args.weights.absolute() if args.weights is not None else None, args.quality, args.device,
                                 args.precision, int(args.max_memory * 2**30), args.tile or None, args.compile)
    settings = ray_backend.BatchSettings(names, args.pass_name, args.require_aux, overwrite,
                                         args.temporal_warmup if temporal.use else None,
                                         args.temporal_weights.absolute() if args.temporal_weights is not None else None)

    def blocks(todo, count: int):
        written = temporal_plan.without_warmup(todo)
        return [temporal_plan.with_warmup(written[i * len(written) // count:(i + 1) * len(written) // count], sequence,
                                          args.temporal_warmup, args.out_dir, suffix, args.pass_name, overwrite)
                for i in range(count)]

    return ray_backend.run_batch_ray(
        jobs, spec, settings, args.ray, workers=args.ray_workers, keep_going=args.keep_going,
        chunks_of=blocks if temporal.use else ray_backend.one_frame_each, log=log, progress=bar.update,
        describe=wording.describer(), announce=(lambda text: log("info", text)) if args.verbose else None,
    )


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mcdenoise.batch.plan import plan_jobs

    from mcdenoise.batch.runner import run_batch
    from mcdenoise.cli import wording
    from mcdenoise.preview import save_png, side_by_side
    from mcdenoise.batch.sequence import expand_inputs, select_shard

    from mcdenoise.temporal import plan as temporal_plan

    sequence = expand_inputs(args.inputs, args.frames)
    names = pass_names_from_args(args)
    temporal = temporal_plan.choose(sequence, names, enabled=not args.no_temporal)
    sources = temporal_plan.shard_block(sequence, args.shard) if temporal.use else select_shard(sequence, args.shard)
    if args.preview is not None and len(sources) != 1:
        raise McDenoiseError("--preview takes one input frame")
    if args.preview is not None and args.output is not None and _same_file(args.preview, args.output):
        raise McDenoiseError(f"{args.preview}: --preview and -o name the same file; give the preview its own .png name")
    suffix = args.suffix if args.suffix is not None else ("" if args.out_dir is not None else "_denoised")
    jobs = plan_jobs(sources, args.output, args.out_dir, suffix)
    if temporal.use:
        jobs = temporal_plan.with_warmup(jobs, sequence, args.temporal_warmup, args.out_dir, suffix, args.pass_name,
                                         args.overwrite)
    written = temporal_plan.without_warmup(jobs)
    from mcdenoise.inference.runtime import resolve_device
    from mcdenoise.models.tiers import load_for_cli

    if args.ray is not None:
        if args.preview is not None:
            raise McDenoiseError("--preview runs on this machine; drop --ray for one frame")
        load_for_cli(args.weights, args.quality, device="cpu")  # a bad weights file: one error, before the cluster
        loaded = runtime = None
    else:
        loaded = load_for_cli(args.weights, args.quality, device=resolve_device(args.device))
        runtime = runtime_from_args(args, loaded.model)
        slow = warn_slow_bf16(runtime)
        if slow:
            print(f"mcdenoise denoise: warning: {slow}", file=sys.stderr)
    bar = tqdm(total=len(written), unit="frame", file=sys.stderr, disable=args.quiet or len(jobs) < 2, dynamic_ncols=True)

    def log(level: str, message: str | McDenoiseError) -> None:
        if isinstance(message, McDenoiseError):  # a warning with a fix: the CLI's flags, or neutral for the add-on
            message = str(message) if wording.json_wanted() else wording.describe(message)
        if level == "info":
            if not args.quiet:
                _line(bar, message, sys.stdout)
        elif level == "error":  # worded by wording.describer(): a JSON line when the add-on asked for one
            _line(bar, wording.error_line("denoise", message), sys.stderr)
        else:
            _line(bar, f"mcdenoise denoise: {level}: {message}", sys.stderr)

    blend = None
    if temporal.use:
        from mcdenoise.temporal.blendnet import choose_blend

        blend = choose_blend(args.temporal_weights)  # a bad file: one error, before any frame
    if args.verbose or temporal.tell:
        log("info", f"temporal: {'on' if temporal.use else 'off'}, {temporal.reason}"
                    + (f"; {args.temporal_warmup} history frames, {blend.label}" if temporal.use else ""))
    hook = None
    if temporal.use and args.ray is None:
        from mcdenoise.temporal.history import RunnerHook

        hook = RunnerHook(args.temporal_warmup, log, blend)
    said = []

    def on_denoised(job, prepared, denoised) -> None:
        if args.verbose and not said:
            said.append(job)
            log("info", run_line(args, loaded, runtime, prepared))
        if args.preview:
            save_png(args.preview, side_by_side([prepared.frame.color, denoised]))

    try:
        if args.ray is not None:
            summary = _run_on_ray(args, jobs, names, temporal, sequence, suffix, log, bar)
        else:
            summary = run_batch(
                loaded, jobs, runtime, names, args.pass_name, args.require_aux, args.keep_going,
                overwrite=args.overwrite or args.output is not None, log=log, progress=bar.update,
                on_denoised=on_denoised if args.preview or args.verbose else None, describe=wording.describer(),
                temporal=hook,
            )
    finally:
        bar.close()
    if skip_line(summary):
        print(skip_line(summary))
    if len(written) > 1 or summary.failed or summary.skipped:
        print(f"{summary.line()} of {summary.total} frame(s) in {summary.seconds:.1f} s")
    if summary.stopped_early:
        print("stopped: the error above would fail every frame; fix it and re-run to resume" if args.keep_going else
              "stopped at the first failed frame; fix it and re-run to resume, or add --keep-going", file=sys.stderr)
    if args.stats:
        n = len(summary.done)
        fps = n / summary.seconds if summary.seconds else 0.0
        model_fps = n / summary.model_seconds if summary.model_seconds else 0.0
        print(f"stats: {n} frame(s) in {summary.seconds:.2f} s = {fps:.3f} frames/s; model alone {summary.model_seconds:.2f} s = {model_fps:.3f} frames/s; "
              f"pipeline at {100 * fps / model_fps if model_fps else 0:.1f} % of model throughput")
    if summary.failed:
        return 1 if args.keep_going and not summary.stopped_early else 2
    return 0


def _line(bar, line: str, stream: TextIO) -> None:
    """One whole line in one write, under the progress bar's lock: the reader, model and writer
    threads all report, and a farm's log parser (or the add-on's JSON reader) must never see two
    messages run together."""
    with bar.external_write_mode(file=stream):
        stream.write(line + "\n")
        stream.flush()
