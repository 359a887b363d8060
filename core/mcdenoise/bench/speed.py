"""``mcdenoise bench --speed``: ms per megapixel and peak memory of our models and of Intel
OIDN, measured in one run on one machine, written to ``<report>/speed.md``.

Every measurement runs in a fresh interpreter, so peak memory is that one denoiser's: the
worker resets the kernel's RSS high-water mark (``/proc/self/clear_refs``) after building its
inputs and warming up on a small frame, and reports ``VmHWM`` minus the RSS at that point,
which counts OIDN's native buffers as well as torch's. Timing excludes interpreter start and
the warm-up (first-call oneDNN/OIDN set-up), includes everything a user waits for inside
``denoise_frame`` / ``pyoidn.denoise`` (HDR transform, tiling, layout conversion). Shared
machines are noisy, so ours and OIDN's runs alternate and repeat in ``--rounds`` rounds and
the fastest of each is kept; only ratios from the same run should be compared.

Our CPU models are timed twice per size, both with the tile the runtime's one rule picks
(:meth:`mcdenoise.inference.runtime.Runtime.tile_for`): within ``--max-memory`` as
``mcdenoise denoise`` runs them, and without a budget (a quarter of free memory, often the
whole frame). The two differ more than one would guess (docs/speed.md).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcdenoise.choices import DEFAULT_MAX_MEMORY_GIB, QUALITIES
from mcdenoise.cli import options
from mcdenoise.cli.argtypes import memory_gib, names
from mcdenoise.errors import McDenoiseError

NAMED_SIZES = {"256": (256, 256), "720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}
# "accurate" is Blender's default, OIDN-Accurate (``bench.oidn.accurate``): albedo and normal each
# denoised first, then colour at quality high with clean_aux, three filters per frame (CPU only).
OIDN_QUALITIES = ("accurate", "high", "balanced", "fast")
ACCURATE = "accurate"
BIG_FRAME_PIXELS = 1_000_000  # frames this large are timed once per round: a 4K run is minutes


@dataclass(frozen=True)
class SpeedRun:
    denoiser: str  # "ours" or "oidn"
    quality: str
    width: int
    height: int
    device: str = "cpu"
    precision: str = "fp32"
    repeat: int = 1
    max_memory_gib: float = 0.0  # ours on CPU: the budget as --max-memory; 0 = none (a share of free memory)

    @property
    def label(self) -> str:
        if self.denoiser != "ours":
            return "OIDN-Accurate (3 filters)" if self.quality == ACCURATE else f"OIDN {self.quality}"
        return f"mcdenoise {self.quality}" + (f" (--max-memory {self.max_memory_gib:g})" if self.max_memory_gib else "")


def parse_size(text: str) -> tuple[int, int]:
    """'256' -> 256x256, '1080p', '4k', or 'WxH'."""
    key = text.strip().lower()
    if key in NAMED_SIZES:
        return NAMED_SIZES[key]
    try:
        if "x" in key:
            w, h = (int(v) for v in key.split("x"))
        else:
            w = h = int(key)
    except ValueError:
        raise McDenoiseError(f"--sizes: cannot read {text!r}; use 256, 1080p, 4k or WxH") from None
    if w < 16 or h < 16:
        raise McDenoiseError(f"--sizes: {text!r} is too small (at least 16x16)")
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("speed benchmark (--speed)")
    g.add_argument("--sizes", default="256,1080p,4k", help="comma-separated frame sizes: 256, 720p, 1080p, 4k or WxH (default: %(default)s)")
    options.add_quality(g, many=True, default=list(QUALITIES), old=("--qualities",),
                        help=f"our model qualities to time, comma-separated (default: {','.join(QUALITIES)})")
    options.add_alias(g, "--oidn-qualities", g.add_argument(
        "--oidn-quality", type=names(OIDN_QUALITIES, "OIDN quality"), default=list(OIDN_QUALITIES), metavar="Q[,Q...]",
        help=f"OIDN qualities to time, comma-separated, empty for none (default: {','.join(OIDN_QUALITIES)})"))
    g.add_argument("--repeat", type=int, default=3, help="timed runs per measurement for frames under 1 MP; larger frames run once (default: %(default)s)")
    g.add_argument("--rounds", type=int, default=2, help="interleaved rounds of every measurement, fastest kept (default: %(default)s)")
    options.add_alias(g, "--precisions", g.add_argument(
        "--gpu-precision", default="fp16,bf16", metavar="P[,P...]",
        help="extra precisions timed on a CUDA GPU when one is present (default: %(default)s)"))
    options.add_alias(g, "--cpu-precisions", g.add_argument(
        "--cpu-precision", metavar="P[,P...]",
        help="precisions of our models on CPU (default: fp32, plus bf16 where the CPU has native bf16)"))
    g.add_argument("--max-memory", type=memory_gib, default=DEFAULT_MAX_MEMORY_GIB, metavar="GIB",
                   help="besides the rows without a budget (a quarter of free memory), time our models on CPU as `mcdenoise denoise "
                   "--max-memory GIB` tiles them, i.e. what the CLI runs (default: %(default)s, the CLI's default; 0 for none)")


def synthetic_frame(width: int, height: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A low-spp-looking HDR frame (smooth shading, exponential sample noise, fireflies) with
    albedo and normal; neither denoiser's speed depends on content, but OIDN's HDR path
    and our exposure step should see realistic values."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    shade = 0.5 + 0.4 * np.sin(xx / 37.0)[..., None] * np.cos(yy / 53.0)[..., None]
    albedo = np.clip(np.stack([shade[..., 0], 0.5 * shade[..., 0] + 0.2, 1.0 - shade[..., 0]], -1), 0, 1).astype(np.float32)
    color = albedo * rng.exponential(1.0, (height, width, 3)).astype(np.float32)
    fireflies = rng.random((height, width)) < 1e-3
    color[fireflies] *= 50.0
    normal = np.zeros((height, width, 3), np.float32)
    normal[..., 2] = 1.0
    return np.ascontiguousarray(color), albedo, normal


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def time_run(run: SpeedRun) -> dict:
    """Time one denoiser in this process (the worker side: :func:`_spawn` calls it in a fresh
    interpreter, with the allocator set as the CLI sets it)."""
    import torch

    color, albedo, normal = synthetic_frame(run.width, run.height)
    # Warm up (oneDNN/OIDN set-up, per-shape kernel choice) on the frame itself when it is
    # small, on a small one otherwise: a big frame's first call is what a user waits for.
    small = synthetic_frame(128, 128, seed=1) if run.width * run.height >= BIG_FRAME_PIXELS else (color, albedo, normal)
    cuda = run.device.startswith("cuda")
    if run.denoiser == "ours":
        from mcdenoise.features import SHIPPED_INPUTS
        from mcdenoise.inference.denoise import denoise_frame
        from mcdenoise.inference.encode import FrameInputs
        from mcdenoise.inference.runtime import Runtime
        from mcdenoise.models.loader import LoadedModel, resolve_device
        from mcdenoise.models.tiers import model_for_quality, prefilter_for_quality

        device = resolve_device(run.device)
        prefilter = prefilter_for_quality(run.quality)  # its cost is part of the quality's
        loaded = LoadedModel(model_for_quality(run.quality).to(device), "unet", {}, SHIPPED_INPUTS,
                             prefilter=prefilter.to(device) if prefilter is not None else None)
        runtime = Runtime(device, precision=run.precision, max_memory=int(run.max_memory_gib * 2**30) if run.max_memory_gib else None)

        def call(c, a, n):
            inputs = FrameInputs(c, a, n, samples=4)  # as Blender's stamp gives it
            return denoise_frame(loaded, inputs, runtime.tile_for(loaded.model, inputs), runtime=runtime)
    else:
        import pyoidn

        if cuda:
            color, albedo, normal = (torch.from_numpy(a).to(run.device) for a in (color, albedo, normal))
            small = [torch.from_numpy(np.asarray(a)).to(run.device) if isinstance(a, np.ndarray) else a for a in small]

        def call(c, a, n):
            if run.quality == ACCURATE:
                from mcdenoise.bench import oidn
                from mcdenoise.inference.encode import FrameInputs

                return oidn.accurate(FrameInputs(c, a, n))
            return pyoidn.denoise(c, a, n, hdr=True, quality=run.quality)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    call(*small)
    sync()
    base_kib = _rss_kib("VmRSS")
    exact_peak = _reset_peak_rss()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        cuda_base = torch.cuda.memory_allocated()
    times = []
    for _ in range(run.repeat):
        start = time.perf_counter()
        call(color, albedo, normal)
        sync()
        times.append(time.perf_counter() - start)
    peak_mib = max(_rss_kib("VmHWM") - base_kib, 0) / 1024 if exact_peak else float("nan")
    if cuda:
        peak_mib = (torch.cuda.max_memory_allocated() - cuda_base) / 2**20 if run.denoiser == "ours" else float("nan")
    return {"seconds": min(times), "peak_mib": peak_mib, "threads": torch.get_num_threads()}


def _spawn(run: SpeedRun) -> dict:
    code = ("import json,sys; from mcdenoise.inference.allocator import keep_freed_memory; keep_freed_memory(); "
            "from mcdenoise.bench.speed import SpeedRun, time_run; print(json.dumps(time_run(SpeedRun(**json.loads(sys.argv[1])))))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(run.__dict__)], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": tail[:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def plan(
    sizes: list[tuple[int, int]],
    models: list[str],
    oidn: list[str],
    repeat: int,
    gpu: bool,
    precisions: list[str],
    cpu_precisions: tuple[str, ...] = ("fp32",),
    cpu: bool = True,
    max_memory_gib: float = 0.0,
) -> list[SpeedRun]:
    """All measurements of one round, ours and OIDN alternating so that a burst of load from
    another process hits both sides rather than one."""
    runs = []
    for w, h in sizes:
        reps = repeat if w * h < BIG_FRAME_PIXELS else 1
        budgets = [0.0, max_memory_gib] if max_memory_gib else [0.0]
        ours = [SpeedRun("ours", q, w, h, precision=p, repeat=reps, max_memory_gib=m) for q in models for p in cpu_precisions for m in budgets] if cpu else []
        theirs = [SpeedRun("oidn", q, w, h, repeat=reps) for q in oidn] if cpu else []
        for i in range(max(len(ours), len(theirs))):
            runs += ours[i : i + 1] + theirs[i : i + 1]
        if gpu:
            runs += [SpeedRun("ours", q, w, h, "cuda", p, reps) for q in models for p in ["fp32", *precisions]]
            runs += [SpeedRun("oidn", q, w, h, "cuda", "auto", reps) for q in oidn if q != ACCURATE]
    return runs


def measure(runs: list[SpeedRun], rounds: int, log=print) -> dict[SpeedRun, dict]:
    """Time every run ``rounds`` times, even rounds in reverse order, keeping the fastest."""
    best: dict[SpeedRun, dict] = {}
    for r in range(rounds):
        for run in runs if r % 2 == 0 else list(reversed(runs)):
            result = _spawn(run)
            old = best.get(run)
            if old is None or "error" in old or ("error" not in result and result["seconds"] < old["seconds"]):
                best[run] = result
            shown = result.get("error") or f"{result['seconds'] * 1000:.0f} ms"
            log(f"round {r + 1}/{rounds}  {run.width}x{run.height}  {run.label} {run.device} {run.precision}: {shown}")
    return best


def table(results: dict[SpeedRun, dict]) -> str:
    """Markdown table, with each row's time as a ratio to OIDN high and to OIDN-Accurate (what
    Blender runs by default) on the same frame size and device."""
    def times(quality: str) -> dict:
        return {(j.width, j.height, j.device): r["seconds"] for j, r in results.items()
                if j.denoiser == "oidn" and j.quality == quality and "error" not in r}

    ref, ref_accurate = times("high"), times(ACCURATE)
    lines = [
        "| size | denoiser | device | precision | ms/frame | ms/MP | peak MiB | ms/MP vs OIDN high | vs OIDN-Accurate |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for run, r in results.items():
        size = f"{run.width}x{run.height}"
        if "error" in r:
            lines.append(f"| {size} | {run.label} | {run.device} | {run.precision} | failed: {r['error']} | | | | |")
            continue
        mp = run.width * run.height / 1e6
        key = (run.width, run.height, run.device)
        ratio_text, accurate_text = (f"{r['seconds'] / t[key]:.2f}" if key in t else "n/a" for t in (ref, ref_accurate))
        peak = "n/a" if r["peak_mib"] != r["peak_mib"] else f"{r['peak_mib']:.0f}"
        precision = run.precision if run.denoiser == "ours" else "OIDN's"
        lines.append(f"| {size} | {run.label} | {run.device} | {precision} | {r['seconds'] * 1000:.0f} | {r['seconds'] * 1000 / mp:.0f} | {peak} | {ratio_text} | {accurate_text} |")
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> None:
    import torch

    from mcdenoise.inference.runtime import cpu_has_native_bf16

    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    models, oidn = args.quality, args.oidn_quality
    precisions = [p.strip() for p in args.gpu_precision.split(",") if p.strip()]
    if not sizes or not (models or oidn):
        raise McDenoiseError("nothing to time: give at least one size and one model")
    if args.repeat < 1 or args.rounds < 1:
        raise McDenoiseError("--repeat and --rounds must be at least 1")
    if args.max_memory < 0:
        raise McDenoiseError("--max-memory must be positive (GiB), or 0 for the rows without a budget only")
    if args.device not in ("auto", "cpu", "cuda"):  # its timers synchronise CUDA only
        raise McDenoiseError(f"--device {args.device}: the speed benchmark times the CPU and CUDA GPUs only; "
                             "use --device cpu, cuda or auto")
    gpu = torch.cuda.is_available() and args.device != "cpu"
    if args.device == "cuda" and not gpu:
        raise McDenoiseError("--device cuda: PyTorch sees no CUDA GPU here; use --device cpu or auto")
    if args.cpu_precision:
        cpu_precisions = tuple(p.strip() for p in args.cpu_precision.split(",") if p.strip())
    else:
        cpu_precisions = ("fp32", "bf16") if cpu_has_native_bf16() else ("fp32",)
    results = measure(plan(sizes, models, oidn, args.repeat, gpu, precisions, cpu_precisions, cpu=args.device != "cuda", max_memory_gib=args.max_memory), args.rounds)
    from mcdenoise.inference.runtime import physical_cores
    from mcdenoise.models.tiers import macs_per_pixel, model_for_quality

    report = Path(args.report)
    report.mkdir(parents=True, exist_ok=True)
    threads = sorted({r["threads"] for r in results.values() if "threads" in r})
    header = (
        "# mcdenoise speed benchmark\n\n"
        f"Machine: {platform.processor() or platform.machine()}, {physical_cores()} physical cores, torch threads {threads}, "
        f"torch {torch.__version__}, GPU: {torch.cuda.get_device_name(0) if gpu else 'none'}.\n"
        f"Rounds: {args.rounds} (fastest kept); timed runs per measurement: {args.repeat} under 1 MP, else 1. "
        "Peak MiB is the RSS high-water mark over the run minus the RSS before it (GPU rows: torch's peak allocation). "
        "Our CPU rows marked (--max-memory N) are tiled as `mcdenoise denoise --max-memory N` tiles the frame (what the CLI runs); "
        "the others take the largest tile that fits a quarter of the free memory (no budget).\n\n"
        "Our model costs (MAC per pixel): " + ", ".join(f"{q} {macs_per_pixel(model_for_quality(q)) / 1000:.0f}k" for q in models) + ".\n\n"
    )
    text = header + table(results)
    (report / "speed.md").write_text(text)
    print(text)
    print(f"wrote {report / 'speed.md'}")
