"""How the add-on words the core's errors: each fix key of ``mcdenoise.errors.FIXES`` in terms of
Blender's and this add-on's own controls (the CLI words the same keys as flags). Pure Python, so
it can be imported and tested without ``bpy``."""

from __future__ import annotations

import json

# What the worker adds to the external CLI's environment to get its errors as JSON lines
# (``mcdenoise.cli.wording.FORMAT_VARIABLE``).
JSON_ERRORS = {"MCDENOISE_ERROR_FORMAT": "json"}

# The add-on's own problems with getting PyTorch (no core error behind them).
_OR_EXTERNAL = "or set 'External Python' in the mcdenoise preferences to an environment with mcdenoise installed"
OFFLINE = ("Blender is offline: allow Online Access (Edit > Preferences > System > Network; from a command line, "
           "blender --online-mode) to download PyTorch, " + _OR_EXTERNAL)
OFFLINE_FORCED = "Blender was started with --offline-mode: start it without that option to download PyTorch, " + _OR_EXTERNAL
NO_PIP = ("Blender's Python ({python}) has neither pip nor the pip wheel of ensurepip: install pip for that Python "
          "(e.g. your system's python3-pip package), " + _OR_EXTERNAL)
# Keyed by whether the broken package is the extension's own copy (the one 'Install PyTorch' made).
BROKEN_IMPORT = {
    True: "'import {name}' fails in Blender ({error}): the copy in {folder} is broken or incomplete; click 'Install PyTorch' "
          "in the mcdenoise preferences again (it replaces {site}) or delete {site}, " + _OR_EXTERNAL,
    False: "'import {name}' fails in Blender ({error}): {folder} is broken or built for another Python; delete or repair it, "
           + _OR_EXTERNAL,
}

FIXES: dict[str, str] = {
    "color_pass": "render with Combined (or Noisy Image) in the view layer's passes and save as OpenEXR MultiLayer",
    "require_aux": "click 'Set up passes' (enables Denoising Data), or untick 'Require albedo/normal'",
    "aux_missing": "for full quality, click 'Set up passes' (enables Denoising Data) and render again",
    "out_dir": "choose another output folder in Output Properties",
    "out_dir_create": "create it or choose another output folder in Output Properties",
    "out_dir_permissions": "fix its permissions or choose another output folder in Output Properties",
    "one_output": "denoise one image at a time",
    "output_clash": "give each image its own output file",
    "frames_missing": "re-render the missing frames or narrow the frame range",
    "frame_pattern": "check the output path and frame range",
    "weights_path": "check 'Weights' in the mcdenoise panel (this scene's) or in the mcdenoise preferences",
    "weights_format": "set 'Weights' in the mcdenoise preferences to an mcdenoise weights file, or clear it to use Quality",
    "temporal_weights": "reinstall the mcdenoise extension (its temporal blend weights are damaged)",
    "reinstall": "reinstall the mcdenoise extension",
    "quality_shipped": "pick another Quality, or set 'Weights' in the mcdenoise preferences",
    "weights_or_quality": "clear 'Weights' in the preferences to use Quality",
    "device_cuda": "set Device to CPU or Automatic in the mcdenoise preferences",
    "precision_fp16": "use fp16 precision on this GPU",
    "compile_cuda": "compiling is for CUDA only",
    "train_widths": "pick a model size that matches or grows the base model's",
    "train_arch": "pick a matching model, or start from another weights file",
    "train_batch": "use a batch size that divides evenly over the training processes",
    "train_run_dir": "use another training folder",
    "train_lr": "lower the learning rate and resume",
    "max_memory": "denoise it outside Blender with a memory budget of at least {need_gib} GiB, on a machine that has it",
    "render_dataset": "render a dataset into {root} first",
    "blend_file": "save the scene as a .blend file first",
    "shot_camera": "set the scene's camera in Scene Properties and save the file",
    "shot_engine": "set the render engine to Cycles in Render Properties and save the file",
    "shot_frames": "pick frames within the scene's range {first}-{last}",
    "finetune_frames": "pick a frame range of at least two frames (one is held aside to check the tuned model)",
    "finetune_minutes": "give it at least {need_minutes} minutes, or fewer frames",
    "pairs_match": "give the references the same frame numbers as the noisy renders",
    "pairs_size": "render the noisy frame and its reference at the same resolution",
    "finetune_work": "delete {work} to start over, or save the model under another name",
}


def describe(exc: BaseException) -> str:
    """The core error's problem with the fix in the add-on's terms."""
    worded = getattr(exc, "worded", None)
    return worded(FIXES) if callable(worded) else str(exc)


def describe_json_line(line: str) -> str | None:
    """An error the external Python's CLI printed as JSON (``MCDENOISE_ERROR_FORMAT=json``),
    worded here; None when the line is not such an error."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or "problem" not in data:
        return None
    fix = data.get("fix")
    try:  # an external mcdenoise of another version may send a key or a detail unknown here
        return f"{data['problem']}; {FIXES[fix].format(**data.get('details') or {})}"
    except (KeyError, IndexError):
        return str(data["problem"])


def cli_warnings(stderr: str) -> list[str]:
    """The warnings an external ``mcdenoise denoise`` printed ("mcdenoise denoise: warning: ..."),
    without the prefix, so the add-on can report them like its in-Blender runs do."""
    return [line.split(": warning: ", 1)[1] for line in stderr.splitlines() if ": warning: " in line]
