"""Issue 19's measurement: fine-tune on the first frames of animated shots, score on frames it
never saw, for several budgets, and write the table the model card shows.

    python tools/finetune_table.py data/shots24 --shots interior_pan,fog_orbit --minutes 2,5,10,20 --out report/

For every shot and budget (a "cell"), in a folder of its own (``OUT/cells/<shot>/<minutes>min/``):

1. ``mcdenoise finetune <SHOTS_DIR>/<shot>/<shot>.blend --frames 1-12 --minutes M -o tuned.pt``
   (the .blend that ``render-suite --shots`` writes beside the frames: same scene, motion,
   exposure and sample count), its output in ``finetune.log``;
2. ``mcdenoise bench --sequence SHOTS_DIR --shots <shot> --frames 13-24 --weights tuned.pt``:
   the tuned model, the shipped one, OIDN plain and OIDN-Accurate, each frame by frame, against
   the shot's references (``bench/temporal.json``);
3. ``cell.json``, written last: the cell's numbers.

Then ``OUT/finetune_table.json`` and ``OUT/finetune_table.md``: shot, budget, training steps,
mean PSNR of tuned / base / OIDN / OIDN-Accurate on the measured frames, tuned minus
OIDN-Accurate (the issue's target: >= +1.0 dB at 10 minutes), and the gain the fine-tune itself
reported on its held-aside frame.

Resumable: a cell with a ``cell.json`` is not redone; a cell whose weights file exists is only
scored again; a fine-tune killed half way resumes (``finetune``'s own work folder). Budgets are
wall-clock minutes on the machine as it is: run it on an idle machine, one cell at a time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

COLUMNS = ("shot", "budget (min)", "steps", "tuned", "base", "OIDN", "OIDN-Accurate", "tuned − OIDN-Accurate",
           "held-aside gain", "kept")


def _budgets(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated minutes, got {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"minutes must be > 0, got {text!r}")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from mcdenoise.cli.argtypes import frame_list

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shots_dir", type=Path, help="a render-suite --shots folder (frames, references and each shot's .blend)")
    p.add_argument("--shots", required=True, type=lambda t: [n for n in t.split(",") if n], help="shots, comma-separated")
    p.add_argument("--minutes", type=_budgets, default=[2.0, 5.0, 10.0, 20.0],
                   help="fine-tuning budgets in minutes, comma-separated (default 2,5,10,20)")
    p.add_argument("--out", type=Path, required=True, help="folder for the cells and the table")
    p.add_argument("--train-frames", type=frame_list, default=list(range(1, 13)), help="frames to tune on (default 1-12)")
    p.add_argument("--measure-frames", type=frame_list, default=list(range(13, 25)),
                   help="frames to score on (default 13-24)")
    p.add_argument("--spp", type=int, default=4, help="noisy samples: rendered by finetune, scored by bench (default 4)")
    p.add_argument("--quality", default="balanced", help="the shipped model to tune and compare with (default balanced)")
    p.add_argument("--device", help="finetune --device (default: finetune's own)")
    p.add_argument("--render-device", help="finetune --render-device (default: finetune's own)")
    p.add_argument("--threads", type=int, default=0, help="finetune --threads, 0 = all (default)")
    p.add_argument("--max-steps", type=int, default=0,
                   help="finetune --max-steps: stop training after N steps (quick checks; 0 = the minutes decide)")
    p.add_argument("--no-oidn", action="store_true", help="score without the OIDN columns (pyoidn not installed)")
    args = p.parse_args(argv)
    overlap = sorted(set(args.train_frames) & set(args.measure_frames))
    if overlap:
        p.error(f"--train-frames and --measure-frames share frame(s) {', '.join(map(str, overlap[:8]))}: "
                "the measurement must be on frames the tuning never sees")
    return args


def _span(frames: list[int]) -> str:
    """``1-12`` for a run of frames, else the list: what the CLIs' --frames read back."""
    return f"{frames[0]}-{frames[-1]}" if frames == list(range(frames[0], frames[-1] + 1)) else ",".join(map(str, frames))


def _minutes_label(minutes: float) -> str:
    return f"{minutes:g}min"


def _mcdenoise(args: list[Any], log: Path) -> None:
    """``mcdenoise ARGS`` in a process of its own (fresh Blender and torch), output appended to
    ``log``; a failure is raised with the end of the log."""
    cmd = [sys.executable, "-m", "mcdenoise", *map(str, args)]
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=False).returncode
    if code != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise SystemExit(f"finetune_table: {' '.join(cmd[2:4])} failed (exit {code}); see {log}:\n{tail}")


def _write(path: Path, text: str) -> None:
    from mcdenoise.io.atomic import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_text(text)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def run_cell(args: argparse.Namespace, shot: str, minutes: float, say) -> dict[str, Any]:
    """One shot at one budget: fine-tune, score, and write ``cell.json`` last."""
    from mcdenoise.bench import oidn, temporal
    from mcdenoise.dataset.sequence_render import blend_path
    from mcdenoise.models.loader import load_model

    cell = args.out / "cells" / shot / _minutes_label(minutes)
    record_path = cell / "cell.json"
    if record_path.is_file():
        say(f"{shot} {minutes:g} min: done before")
        return json.loads(record_path.read_text())
    blend = blend_path(args.shots_dir, shot)
    if not blend.is_file():
        raise SystemExit(f"finetune_table: {blend} is missing; 'mcdenoise render-suite --out {args.shots_dir} --shots {shot} "
                         "...' writes it (again, for a shot rendered before shots had one)")
    cell.mkdir(parents=True, exist_ok=True)
    tuned = cell / "tuned.pt"
    if not tuned.is_file():  # the weights file is written last: there, the fine-tune has finished
        say(f"{shot} {minutes:g} min: fine-tuning on frames {_span(args.train_frames)}")
        devices = [*(["--device", args.device] if args.device else []),
                   *(["--render-device", args.render_device] if args.render_device else [])]
        _mcdenoise(["finetune", blend, "--frames", _span(args.train_frames), "--minutes", f"{minutes:g}", "-o", tuned,
                    "--quality", args.quality, "--spp", args.spp, "--threads", args.threads,
                    "--max-steps", args.max_steps, *devices], cell / "finetune.log")
    say(f"{shot} {minutes:g} min: scoring frames {_span(args.measure_frames)}")
    _mcdenoise(["bench", "--sequence", args.shots_dir, "--shots", shot, "--frames", _span(args.measure_frames),
                "--weights", tuned, "--models", args.quality, "--spp", args.spp, "--out", cell / "bench",
                *(["--no-oidn"] if args.no_oidn else [])], cell / "bench.log")
    bench = json.loads((cell / "bench" / "temporal.json").read_text())
    scored = next(s for s in bench["shots"] if s["shot"] == shot)
    numbers, methods = scored["numbers"], bench["methods"]
    psnr = {"tuned": numbers[bench["tuned"]]["psnr"], "base": numbers[temporal.SINGLE]["psnr"]}
    if oidn.ACCURATE in methods:
        psnr |= {"oidn": numbers[oidn.PLAIN]["psnr"], "oidn_accurate": numbers[oidn.ACCURATE]["psnr"]}
    meta = load_model(tuned).meta
    record = {
        "shot": shot, "minutes": minutes, "max_steps": args.max_steps, "spp": args.spp, "quality": args.quality,
        "train_frames": args.train_frames, "measured_frames": scored["frames"],
        "finetune": {k: meta.get(k) for k in ("steps", "kept", "spent_minutes", "held_aside_frame", "base_psnr",
                                               "tuned_psnr", "validation_gain_db", "window", "windows", "target_spp")},
        "mean_psnr": {k: _mean(v) for k, v in psnr.items()}, "psnr": psnr,
    }
    m = record["mean_psnr"]
    record["tuned_minus_oidn_accurate"] = m["tuned"] - m["oidn_accurate"] if "oidn_accurate" in m else None
    _write(record_path, json.dumps(record, indent=1) + "\n")
    return record


def _cell(value: float | None, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:+.2f}" if sign else f"{value:.2f}"


def table(records: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The markdown report: how it was measured, then one row per shot and budget."""
    lines = ["# Fine-tuning on a shot: unseen frames, per budget", "",
             (f"Shots in `{args.shots_dir}` at {args.spp} spp. Each row: `mcdenoise finetune` of the `{args.quality}` model "
              f"on frames {_span(args.train_frames)} of the shot's .blend with that budget in minutes (rendering included), "
              f"then mean PSNR (dB, tonemapped, against each frame's reference) on frames {_span(args.measure_frames)}, "
              "which the tuning never saw, every model run frame by frame (`bench --sequence --weights`). "
              "Base: the shipped model; OIDN: plain (noisy aux); OIDN-Accurate: prefiltered aux, `clean_aux`. "
              "Held-aside gain: what the fine-tune itself measured on its held-aside frame (tuned − base)."),
             f"Machine: {os.cpu_count()} CPU threads visible; budgets are wall-clock."
             + (f" Training capped at {args.max_steps} steps (a quick check, not the measurement)." if args.max_steps else ""),
             "",
             "| " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * (len(COLUMNS) - 2) + "---|"]
    for r in records:
        m, f = r["mean_psnr"], r["finetune"]
        lines.append(f"| {r['shot']} | {r['minutes']:g} | {f.get('steps') or 0} | {_cell(m['tuned'])} | {_cell(m['base'])} | "
                     f"{_cell(m.get('oidn'))} | {_cell(m.get('oidn_accurate'))} | {_cell(r['tuned_minus_oidn_accurate'], True)} | "
                     f"{_cell(f.get('validation_gain_db'), True)} | {f.get('kept') or '—'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        print(f"finetune_table: {text}", file=sys.stderr, flush=True)

    records = [run_cell(args, shot, minutes, say) for shot in args.shots for minutes in args.minutes]
    _write(args.out / "finetune_table.json", json.dumps({"shots_dir": str(args.shots_dir), "cells": records}, indent=1) + "\n")
    _write(args.out / "finetune_table.md", table(records, args))
    print(table(records, args))
    print(f"finetune_table: wrote {args.out / 'finetune_table.md'} and finetune_table.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
