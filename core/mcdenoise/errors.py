"""Exceptions that carry what went wrong and what the user can do about it.

Library code raises these; each front end words them. An error holds the *problem* in no front
end's terms ("render.exr: no albedo pass") and, where the user can fix it, a *fix key* naming the
remedy ("require_aux"). The CLI (``mcdenoise.cli.wording``) turns the key into flags
("drop --require-aux"), the Blender add-on (``addon/wording.py``) into its own controls
("untick 'Require albedo/normal'"), and ``str(exc)`` gives the neutral wording of :data:`FIXES`
that a Python caller reads. Every key has wording in all three tables (a test checks).
"""

from __future__ import annotations

from typing import Any

# fix key -> neutral wording, for Python callers; ``{name}`` fields come from the error's details.
FIXES: dict[str, str] = {
    "color_pass": "name the colour pass explicitly, or pick another pass preset",
    "require_aux": "enable the Denoising Data passes in Blender (View Layer > Passes > Data > Denoising Data), "
    "or allow colour-only denoising",
    "aux_missing": "for full quality, enable the Denoising Data passes in Blender (View Layer > Passes > Data > "
    "Denoising Data) and render again",
    "out_dir": "choose another output folder",
    "out_dir_create": "create it or choose another output folder",
    "out_dir_permissions": "fix its permissions or choose another output folder",
    "one_output": "for several inputs, write into an output folder or add a suffix",
    "output_clash": "add a suffix or write into separate output folders",
    "frames_missing": "re-render them, narrow the frame range, or keep going past missing frames",
    "frame_pattern": "check the path or give the frame range",
    "weights_path": "check the weights file's path",
    "weights_format": "train one with mcdenoise.training.loop.train and export it",
    "temporal_weights": "give a file written by mcdenoise.temporal.train, or none for the hand-made blend",
    "reinstall": "reinstall mcdenoise",
    "quality_shipped": "pick one of the shipped qualities, or pass a trained weights file",
    "weights_or_quality": "give a weights file or a quality, not both",
    "device_cuda": "use the CPU, or let the device be chosen automatically",
    "precision_fp16": "use fp16 precision on this GPU",
    "compile_cuda": "compiling is for CUDA only, so leave it off",
    "train_widths": "pick widths that match or grow the file's, or start from another weights file",
    "train_arch": "pick a matching architecture and widths (or wider widths, to grow a U-Net), or start from another weights file",
    "train_batch": "use a batch size that divides evenly over the training processes",
    "train_run_dir": "use another run folder",
    "train_lr": "lower the learning rate and resume",
    "max_memory": "raise the memory budget to at least {need_gib} GiB (0 = no limit) on a machine that has it",
    "render_dataset": "render some into {root} with mcdenoise.dataset.render.render_dataset",
    "blend_file": "give the path of a Blender scene file (.blend), or fine-tune on rendered pairs instead",
    "shot_camera": "set the scene's camera (Scene Properties > Camera) and save the .blend",
    "shot_engine": "set the render engine to Cycles (Render Properties > Render Engine) and save the .blend",
    "shot_frames": "pick frames within {first}-{last}, or change the scene's frame range and save the .blend",
    "finetune_frames": "give at least two frames: one is held aside to check the tuned model",
    "finetune_minutes": "give a budget of at least {need_minutes} minutes, or fewer frames",
    "pairs_match": "give the references the same frame numbers as the noisy renders",
    "pairs_size": "render the noisy frame and its reference at the same resolution",
    "finetune_work": "delete {work} to start over, or write the model to another file",
}


class McDenoiseError(Exception):
    """Base class: anything mcdenoise reports to a user without a traceback.

    ``problem`` says what is wrong (naming the file and the pass); ``fix`` is a key of
    :data:`FIXES`, or None when there is nothing to add; ``details`` fill the wording's fields.
    """

    def __init__(self, problem: str, *, fix: str | None = None, **details: Any):
        if fix is not None and fix not in FIXES:
            raise ValueError(f"unknown fix key {fix!r}")  # a programming error, caught by the tests
        super().__init__(problem)
        self.problem = problem
        self.fix = fix
        self.details = details

    def worded(self, fixes: dict[str, str]) -> str:
        """The message with the fix worded from ``fixes`` (a front end's table)."""
        if self.fix is None:
            return self.problem
        return f"{self.problem}; {fixes[self.fix].format(**self.details)}"

    def __str__(self) -> str:
        return self.worded(FIXES)

    def __reduce__(self):
        # Errors cross process boundaries (worker processes, the add-on's external Python):
        # keep the fix key and details, which Exception's default pickling would drop.
        return (_rebuild, (type(self), self.problem, self.fix, self.details))


def _rebuild(cls: type[McDenoiseError], problem: str, fix: str | None, details: dict[str, Any]) -> McDenoiseError:
    return cls(problem, fix=fix, **details)


class InputFileError(McDenoiseError):
    """An input file is missing, unreadable, truncated or not an EXR."""


class MissingPassError(McDenoiseError):
    """A render pass the denoiser needs (colour, or albedo/normal when required) is absent."""


class PassShapeError(McDenoiseError):
    """Passes of one frame disagree in size, or a pass has the wrong number of channels."""


class OutputError(McDenoiseError):
    """The output cannot be written (read-only directory, disk full, same path as input...)."""


class WeightsError(McDenoiseError):
    """A weights file is missing, corrupted, or made for another architecture."""


class DeviceError(McDenoiseError):
    """The requested compute device is not available."""


class ShotError(McDenoiseError):
    """A .blend that cannot be fine-tuned on as it is (no camera, not Cycles, frames outside its range)."""


class Cancelled(McDenoiseError):
    """The user cancelled a long operation (raised from a progress callback)."""
