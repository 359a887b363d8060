"""How the command line words the core's errors: each fix key of :data:`mcdenoise.errors.FIXES`
as the flags a CLI user types. The add-on has its own table in its own terms."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from mcdenoise.errors import McDenoiseError

# Set to "json" by a front end that runs the CLI and words errors itself (the add-on's worker).
FORMAT_VARIABLE = "MCDENOISE_ERROR_FORMAT"

FIXES: dict[str, str] = {
    "color_pass": "name the pass with --color-pass, or pick another --pass-preset",
    "require_aux": "enable Denoising Data passes in Blender (View Layer > Passes > Data > Denoising Data) or drop --require-aux",
    "aux_missing": "for full quality, enable Denoising Data passes in Blender (View Layer > Passes > Data > Denoising Data) "
                   "and render again, or name another renderer's passes with --albedo-pass/--normal-pass",
    "out_dir": "choose another --out",
    "out_dir_create": "create it or choose another --out",
    "out_dir_permissions": "fix its permissions or choose another --out",
    "one_output": "-o/--output takes one input, so for several use --out or --suffix",
    "output_clash": "use --suffix or separate --out runs",
    "frames_missing": "re-render them, narrow --frames, or pass --keep-going to denoise the rest",
    "frame_pattern": "check the path or pass --frames",
    "weights_path": "check the --weights path",
    "weights_format": "train one with 'mcdenoise train'",
    "temporal_weights": "give --temporal-weights a file written by 'mcdenoise train-temporal', or drop it for the hand-made blend",
    "reinstall": "reinstall mcdenoise",
    "quality_shipped": "pick one of those, or pass a trained file with --weights",
    "weights_or_quality": "give --weights or --quality, not both",
    "device_cuda": "use --device cpu or auto",
    "precision_fp16": "use --precision fp16",
    "compile_cuda": "--compile is for CUDA only, so leave it off",
    "train_widths": "pick a --quality whose widths match or grow the file's, or another --init",
    "train_arch": "pick matching --arch/--quality (or a wider --quality, to grow a U-Net) or another --init",
    "train_batch": "use a --batch that is a multiple of torchrun's --nproc-per-node (times its nodes)",
    "train_run_dir": "use another --out",
    "train_lr": "lower --lr and resume",
    "max_memory": "pass --max-memory {need_gib} or more (0 = no limit) on a node that has it",
    "render_dataset": "render some with 'mcdenoise render-dataset --out {root} --scenes N'",
    "blend_file": "give a .blend file, or fine-tune on rendered files with --pairs NOISY_DIR REFS_DIR",
    "shot_camera": "set the scene's camera in Blender (Scene Properties > Camera) and save the .blend",
    "shot_engine": "set the render engine to Cycles in Blender (Render Properties > Render Engine) and save the .blend",
    "shot_frames": "pass --frames within {first}-{last}",
    "finetune_frames": "give --frames a range of at least two frames (one is held aside to check the tuned model)",
    "finetune_minutes": "pass --minutes {need_minutes} or more, or fewer --frames",
    "pairs_match": "give the references in REFS_DIR the same frame numbers as the files in NOISY_DIR",
    "pairs_size": "render the noisy frame and its reference at the same resolution",
    "finetune_work": "delete {work} to start over, or pick another -o",
}


def describe(exc: McDenoiseError) -> str:
    """One line for stderr: the problem and the fix in flags."""
    return exc.worded(FIXES)


def as_json(exc: McDenoiseError) -> str:
    """The error as one JSON line, for a front end that runs the CLI as a subprocess (the
    Blender add-on's external Python) and words the fix in its own terms."""
    return json.dumps({"error": type(exc).__name__, "problem": exc.problem, "fix": exc.fix,
                       "details": {k: str(v) for k, v in exc.details.items()}})


def json_wanted() -> bool:
    """Whether the process that started this CLI asked for errors as JSON lines."""
    return os.environ.get(FORMAT_VARIABLE) == "json"


def describer() -> Callable[[McDenoiseError], str]:
    """How this run words an error: JSON lines when asked for, else the CLI's sentence."""
    return as_json if json_wanted() else describe


def error_line(verb: str, message: str) -> str:
    """A worded error as printed on stderr: a JSON line stands alone, so the front end that
    asked for it reads it as is; a sentence names the verb."""
    return message if json_wanted() else f"mcdenoise {verb}: error: {message}"
