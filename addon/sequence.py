"""Denoise sequence: the Denoised pass for a range of frames already on disk, from the UI.

What auto-denoise did not see gets done here: frames Blender skipped because Overwrite was off
(the file was already there, so no ``render_write``), frames rendered with auto-denoise off or
on a farm, an EXR sequence from elsewhere. The frames are either the scene's output over a frame
range (``frame_path(frame=, view=)`` for each view written to its own file, as Blender names
them) or a numbered EXR sequence (``shot_####.exr``, or one of its files), read with the core's
sequence rules (:mod:`mcdenoise.batch.sequence`: frames not on disk are kept as *missing*).

Each frame is a task on the add-on's queue (:mod:`mcdenoise.jobs`, the worker thread that
auto-denoise uses) and is written exactly as auto-denoise writes it (:mod:`mcdenoise.writeback`:
every view layer, checked before it replaces the file, lossy files and "Keep original" to a
copy). Frames are stabilised with the frames before them as during a render
(:mod:`mcdenoise.temporal_state`, this run's own history). The core's batch runner is not used
for the writing: it writes one layer per file and has no cancel or write-back check; its
frame list and "finished" rule are.

Frames that already hold the pass are skipped unless "Denoise again" is on (the next frame's
history then starts afresh); frames missing on disk are listed, never fatal. Esc (or Cancel)
stops the frame being denoised at its next tile and drops the rest: every file is either as it
was or complete.
"""

from __future__ import annotations

import re
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from . import handlers, jobs, modal, runtime, scene_io, status, temporal_state, worker, writeback


@dataclass(frozen=True)
class SequenceFrame:
    number: int
    view: str  # '' when one file holds every view, or for an EXR sequence from elsewhere
    path: Path
    missing: bool


def rendered_frames(scene: bpy.types.Scene, numbers: list[int]) -> list[SequenceFrame]:
    """The scene's output files of ``numbers``, one per view written to its own file."""
    render = scene.render
    return [SequenceFrame(n, view, path, not path.is_file())
            for n in numbers for view in handlers.views_in_files(render)
            for path in [Path(render.frame_path(frame=n, view=view))]]


def frame_pattern(filepath: str) -> str:
    """A frame pattern from what the artist picked: a pattern (``shot_####.exr``,
    ``shot_%04d.exr``) as it is, or one file of the sequence (its last digits are the frame)."""
    runtime.core()
    from mcdenoise.batch.sequence import parse_pattern  # noqa: PLC0415 (pure Python)

    path = bpy.path.abspath(filepath)
    if parse_pattern(path) is not None:
        return path
    match = re.search(r"(\d+)(\.exr)$", path, re.IGNORECASE)
    if match is None:
        raise worker.AddonError(f"{path}: not a numbered EXR sequence; pick one of its frames (shot_0001.exr) or "
                                "write a pattern (shot_####.exr)")
    return path[: match.start(1)] + "#" * len(match.group(1)) + match.group(2)


def sequence_frames(filepath: str, numbers: list[int] | None) -> list[SequenceFrame]:
    """The frames of an EXR sequence on disk: ``numbers``, or first to last found on disk."""
    runtime.core()
    from mcdenoise.batch.sequence import expand_inputs  # noqa: PLC0415 (pure Python)
    from mcdenoise.errors import McDenoiseError  # noqa: PLC0415

    try:
        sources = expand_inputs([frame_pattern(filepath)], numbers)
    except McDenoiseError as exc:
        raise worker.AddonError(worker.describe(exc)) from exc
    return [SequenceFrame(s.frame, "", s.path, s.missing) for s in sources]


def already_denoised(path: Path, layers: tuple[str, ...], pass_name: str) -> bool:
    """Whether ``path`` is whole and each view layer it holds has the pass, written by mcdenoise
    (the batch runner's "finished" rule, on headers only: no OpenEXR needed, as with an
    external Python)."""
    runtime.core()
    from mcdenoise.io import header  # noqa: PLC0415

    if not path.is_file():
        return False
    try:
        with open(path, "rb") as fh:
            layout = header.read_layout(fh)
            if header.chunk_problem(fh, layout):
                return False
    except (OSError, header.HeaderError):
        return False
    marked = {line for part in layout.parts
              for line in (part.attr(header.WRITTEN_BY.encode()) or b"").decode("utf-8", "replace").splitlines()}
    wanted = writeback.layers_to_denoise(path, layers)
    if wanted == [None]:  # the core's choice of layer: any pass of that name it wrote
        return any(name.rpartition(".")[2] == pass_name for name in marked)
    return all(writeback.join(layer, pass_name) in marked for layer in wanted)


@dataclass
class Run:
    """One Denoise sequence, as the panel and the operator follow it (written by the worker)."""

    frames: list[SequenceFrame]
    done: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: bool = False
    finished: bool = False
    current: str = ""
    tiles: list[int] = field(default_factory=lambda: [0, 0])

    @property
    def missing(self) -> list[int]:
        return sorted({f.number for f in self.frames if f.missing})

    @property
    def queued(self) -> int:
        return sum(not f.missing for f in self.frames)

    def summary(self) -> str:
        parts = [f"{len(set(self.done))} frame(s) denoised"]  # a stereo frame's two files count once
        if self.skipped:
            parts.append(f"{len(set(self.skipped))} already had the pass")
        if self.missing:
            listed = ", ".join(map(str, self.missing[:20])) + (" ..." if len(self.missing) > 20 else "")
            parts.append(f"missing on disk: {listed}")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.cancelled or not self.finished:
            parts.append("cancelled: the rest left as they were")
        return "Denoise sequence: " + "; ".join(parts)


_runs: list[Run] = []  # the latest run, for the panel


def latest() -> Run | None:
    return _runs[-1] if _runs else None


def queue_sequence(scene: bpy.types.Scene, frames: list[SequenceFrame], overwrite: bool, rendered: bool = True) -> Run:
    """Queue every frame on disk (in order: the temporal history needs it) and a summary;
    ``rendered``: the frames are this scene's renders (its motion blur setting applies)."""
    run = Run(frames)
    _runs[:] = [run]
    if not run.queued:
        raise worker.AddonError(f"none of the {len(frames)} frame(s) is on disk (e.g. {frames[0].path})" if frames else
                                "no frames in the range")
    histories = temporal_state.Histories()
    pass_name = scene.mcdenoise.pass_name
    for index, frame in enumerate(f for f in frames if not f.missing):
        job = handlers.file_job(scene, frame.path)
        steps = histories.steps(scene.name, frame.view, frame.number, temporal_state.plan(scene, job.job, rendered))
        label = f"frame {frame.number}" + (f" {frame.view}" if frame.view else "") + f" ({index + 1}/{run.queued})"
        jobs.submit(label, _frame_task(run, frame, job, steps, pass_name, overwrite, label))
    jobs.submit("sequence summary", _summary_task(run))
    return run


def _frame_task(run: Run, frame: SequenceFrame, job: writeback.FileJob, steps, pass_name: str, overwrite: bool,
                label: str):
    def progress(done: int, total: int) -> None:
        run.tiles[:] = [done, total]

    def task(cancel: threading.Event):
        run.current, run.tiles[:] = label, [0, 0]
        target = job.out_path or (writeback.copy_path(job.path) if job.copy else job.path)
        try:
            if not overwrite and already_denoised(target, job.layers, pass_name):
                run.skipped.append(frame.number)
                return None
            result = writeback.denoise(job, progress, cancel, temporal=steps)
        except Exception as exc:  # noqa: BLE001 - one frame's problem is reported, the rest go on
            if worker.is_cancelled(exc):
                run.cancelled = True
                status.report(f"frame {frame.number}: cancelled, {frame.path.name} left as it was")
            else:
                if not isinstance(exc, worker.AddonError):
                    traceback.print_exc()
                run.failed.append(f"frame {frame.number}: {worker.describe(exc)}")
                status.report(run.failed[-1], error=True)
            return None
        run.done.append(frame.number)
        notes = [n for n in (result.note, steps.note() if steps else "") if n]
        status.report(f"frame {frame.number}: '{pass_name}' pass added to {result.path}"
                      + "".join(f" ({n})" for n in notes))
        return None

    return task


def _summary_task(run: Run):
    def task(_cancel: threading.Event):
        run.finished, run.current = True, ""
        status.report(run.summary(), error=bool(run.failed))
        return None

    return task


SOURCES = [
    ("OUTPUT", "Rendered frames", "The scene's output files (Output Properties > Output path) over a frame range"),
    ("FILES", "EXR sequence", "A numbered EXR sequence on disk (pick one of its frames, or write shot_####.exr)"),
]


class MCDENOISE_OT_denoise_sequence(bpy.types.Operator):
    """Add the Denoised pass to every frame of a range already on disk (frames skipped because Overwrite was off
    included), stabilised over time with the Vector pass; Esc cancels"""

    bl_idname = "mcdenoise.denoise_sequence"
    bl_label = "Denoise sequence"

    source: EnumProperty(name="Frames", items=SOURCES, default="OUTPUT")
    filepath: StringProperty(name="Sequence", description="A frame of the EXR sequence, or its pattern (shot_####.exr)",
                             subtype="FILE_PATH", options={"SKIP_SAVE"})
    filter_glob: StringProperty(default="*.exr", options={"HIDDEN"})
    use_custom_range: BoolProperty(name="Custom range", description="Use First/Last instead of the scene's frame range "
                                   "(rendered frames) or every frame on disk (EXR sequence)", default=False)
    frame_first: IntProperty(name="First", default=1)
    frame_last: IntProperty(name="Last", default=250)
    overwrite: BoolProperty(name="Denoise again", description="Also denoise frames that already have the pass "
                            "(otherwise they are skipped)", default=False)

    _timer = None
    _progress = False  # modal.start began a progress bar

    def _frames(self, scene: bpy.types.Scene) -> list[SequenceFrame]:
        if self.use_custom_range:
            if self.frame_last < self.frame_first:
                raise worker.AddonError(f"frame range {self.frame_first}-{self.frame_last} is empty")
            numbers = list(range(self.frame_first, self.frame_last + 1))
        else:
            numbers = list(range(scene.frame_start, scene.frame_end + 1, scene.frame_step)) if self.source == "OUTPUT" else None
        if self.source == "OUTPUT":
            if not scene_io.is_multilayer_exr(scene):
                raise worker.AddonError("the output format is not multilayer EXR: its files hold no passes to denoise "
                                        "(use 'Set up passes', render, then Denoise sequence)")
            return rendered_frames(scene, numbers)
        if not self.filepath:
            raise worker.AddonError("pick a frame of the EXR sequence (or write its pattern, shot_####.exr)")
        return sequence_frames(self.filepath, numbers)

    def _report_end(self, run: Run) -> set[str]:
        text = run.summary()
        self.report({"ERROR"} if run.failed else {"WARNING"} if run.missing or not run.finished else {"INFO"}, text)
        return {"FINISHED"} if run.finished else {"CANCELLED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if self.source == "FILES" and not self.filepath:
            context.window_manager.fileselect_add(self)
            return {"RUNNING_MODAL"}
        return self.execute(context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            run = queue_sequence(context.scene, self._frames(context.scene), self.overwrite, self.source == "OUTPUT")
        except Exception as exc:  # noqa: BLE001 - never take Blender down
            message = worker.describe(exc)
            status.report(message, error=True)
            self.report({"ERROR"}, message)
            return {"CANCELLED"}
        if bpy.app.background or context.window is None:  # scripts, farms: done when this returns
            jobs.wait()
            return self._report_end(run)
        self._run, self._started = run, time.monotonic()
        modal.start(self, context, 0.25, progress_total=max(run.queued, 1))
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        run = self._run
        if event.type == "ESC" and event.value == "PRESS":
            jobs.cancel()  # the frame being denoised stops at its next tile, queued ones are dropped
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        finished = len(run.done) + len(run.skipped) + len(run.failed)
        context.window_manager.progress_update(finished)
        if not run.finished and jobs.pending():
            done, total = run.tiles
            tiles = f", tile {done}/{total}" if total else ""
            context.workspace.status_text_set(f"mcdenoise: denoising {run.current or 'frames'}{tiles}, "
                                              f"{time.monotonic() - self._started:.0f} s; Esc cancels")
            return {"RUNNING_MODAL"}
        modal.stop(self, context)
        return self._report_end(run)

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the operator (a file is loaded, the window closes): stop the frames too."""
        jobs.cancel()
        modal.stop(self, context)


def draw(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The panel's Animation box: the temporal setting, what keeps it from working, Denoise sequence."""
    scene = context.scene
    box = layout.box()
    box.prop(scene.mcdenoise, "temporal")
    if scene.mcdenoise.temporal:
        if scene.render.use_motion_blur:
            box.label(text="Motion blur is on: no motion vectors, frames denoised one by one", icon="INFO")
        elif not all(vl.use_pass_vector for vl in scene.view_layers if vl.use):
            box.label(text="Vector pass off: frames denoised one by one", icon="INFO")
    row = box.row(align=True)
    row.operator(MCDENOISE_OT_denoise_sequence.bl_idname, text="Denoise rendered frames",
                 icon="RENDER_ANIMATION").source = "OUTPUT"
    row.operator(MCDENOISE_OT_denoise_sequence.bl_idname, text="EXR sequence...", icon="FILE_FOLDER").source = "FILES"
