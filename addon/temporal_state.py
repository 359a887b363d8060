"""The temporal history the add-on keeps between frames, so an animation does not flicker.

Each frame is denoised alone and then stabilised with the frames before it, brought into place
by the Vector pass (:mod:`mcdenoise.temporal.history`, the CLI's temporal path). The add-on
sees one frame per ``render_write`` call, so the history lives here between calls:

* auto-denoise keeps one :class:`Histories` for the renders (:data:`RENDER`): each render (from
  ``render_init``) has its own histories, never blended with the last render's frames, freed
  once its queued frames are denoised (``render_complete``) or dropped (``render_cancel``);
  each "Denoise sequence" run has its own;
* inside, one ``TemporalHistory`` per (scene, view layer, view): each view layer and each view
  of a stereo render is its own sequence;
* the history itself starts again when a frame does not follow the one before it (a frame
  skipped because Overwrite is off, a frame step, a missing frame) or has no motion vectors (no
  Vector pass, or motion blur on: Cycles then writes it all zeros), and says so once per render.

Frames reach a history in order: the queue has one worker thread (:mod:`mcdenoise.jobs`).
The temporal step needs PyTorch in Blender; with the external Python frames are denoised one
by one (said once). Only :func:`plan` and :func:`view_of` read Blender's data, on the thread
that queues the frame.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bpy.app.handlers import persistent

from . import jobs, runtime, status, worker


@dataclass(frozen=True)
class Plan:
    """Whether a run's frames take the temporal path, decided where the frame is queued."""

    use: bool
    reason: str = ""  # why not, said once per run ('' when the artist turned it off)
    motion_blur: bool = False  # the frames were rendered with motion blur: their Vector pass is no motion


def plan(scene, job: worker.Job, rendered_here: bool = True) -> Plan:
    """The scene's temporal setting and the backend that will run the model. For frames this
    scene renders (``rendered_here``), motion blur on means no usable Vector pass: Cycles then
    writes the pass all zeros, which would read as "nothing moved"."""
    if not getattr(scene.mcdenoise, "temporal", True):
        return Plan(False)
    motion_blur = rendered_here and bool(scene.render.use_motion_blur)
    try:
        backend = worker.choose_backend(job)
    except worker.AddonError:
        return Plan(False)  # the denoise itself reports what is missing
    if backend == "EXTERNAL":
        return Plan(False, "temporal denoising needs PyTorch in Blender; the external Python denoises frame by frame")
    return Plan(True, motion_blur=motion_blur)


def view_of(scene, path: Path, frame: int) -> str:
    """The view a written file holds ('' when one file holds every view)."""
    from .handlers import views_in_files  # noqa: PLC0415 (handlers imports this module)

    render = scene.render
    for view in views_in_files(render):
        if view and Path(render.frame_path(frame=frame, view=view)) == path:
            return view
    return ""


@dataclass
class FrameSteps:
    """``writeback.denoise``'s ``temporal`` argument for one file: a view layer's name -> its
    step. ``used`` records, per layer, how many earlier frames the output blended."""

    histories: Histories
    scene: str
    view: str
    frame: int
    epoch: int
    motion_blur: bool
    used: dict[str, int] = field(default_factory=dict)

    def __call__(self, layer: str) -> Callable:
        def step(prepared, denoised):
            # a file holding every view (stereo in one EXR) steps each of its views here
            history = self.histories.history((self.scene, layer, self.view or prepared.frame.view), self.epoch)
            frame = prepared.frame
            vector = None if self.motion_blur else frame.vector
            if vector is None:
                why = ("motion blur is on, so Cycles writes no motion into the Vector pass; turn it off for temporal "
                       "denoising" if self.motion_blur else
                       "enable View Layer > Passes > Data > Vector (with motion blur off), or use 'Set up passes'")
                self.histories.say_once("no-vector", f"no Vector pass in {Path(frame.path).name}: denoising frame by "
                                                     f"frame ({why})")
            out = history.push(self.frame, denoised, frame.color, vector, prepared.exposure, frame.albedo, frame.normal)
            self.used[layer] = len(history.kept) - 1 if vector is not None else 0
            return out

        return step

    def note(self) -> str:
        """For the frame's status line: how much history its output used."""
        earlier = max(self.used.values(), default=0)
        return f"temporal, {earlier} earlier frame(s)" if earlier else ""


class Histories:
    """The histories of a series of renders (or of one Denoise sequence), thread-safe. Each
    render is an *epoch*: :meth:`restart` begins a new one, whose frames never see an earlier
    render's, while frames an earlier render queued finish with its own histories;
    :meth:`release` lets go of an epoch's kept frames."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epoch = 0
        self._kept: dict[tuple[int, str, str, str], object] = {}  # (epoch, scene, layer, view) -> history
        self._said: set[str] = set()
        self._last_alone: dict[tuple[str, str], int] = {}  # (scene, view) -> last frame denoised alone

    @property
    def epoch(self) -> int:
        with self._lock:
            return self._epoch

    def restart(self) -> None:
        with self._lock:
            self._epoch += 1
            self._said.clear()
            self._last_alone.clear()

    def held(self) -> int:
        """How many histories are kept (each holds up to five frames)."""
        with self._lock:
            return len(self._kept)

    def release(self, upto: int) -> None:
        """Drop the histories of epochs ``upto`` and older."""
        with self._lock:
            for key in [k for k in self._kept if k[0] <= upto]:
                del self._kept[key]

    def steps(self, scene: str, view: str, frame: int, chosen: Plan) -> FrameSteps | None:
        """One frame's steps (None: denoise it alone), taken when the frame is queued."""
        if not chosen.use:
            with self._lock:  # said for an animation (a frame after the one before it), not for a still
                follows = self._last_alone.get((scene, view)) == frame - 1
                self._last_alone[(scene, view)] = frame
            if chosen.reason and follows:
                self.say_once("off", chosen.reason)
            return None
        return FrameSteps(self, scene, view, frame, self.epoch, chosen.motion_blur)

    def history(self, key: tuple[str, str, str], epoch: int):
        """The history of ``key`` (scene, view layer, view) in ``epoch``."""
        runtime.core()
        from mcdenoise.temporal.history import TemporalHistory  # noqa: PLC0415 (torch: only when denoising)

        with self._lock:
            return self._kept.setdefault((epoch, *key), TemporalHistory())

    def say_once(self, what: str, message: str) -> None:
        with self._lock:
            if what in self._said:
                return
            self._said.add(what)
        status.report(message)


RENDER = Histories()  # auto-denoise's, across the render_write calls of each render


@persistent
def restart_render_history(*_args) -> None:
    """``render_init``: a new render starts its own history (registered by :mod:`mcdenoise.handlers`)."""
    RENDER.restart()


@persistent
def release_after_render(*_args) -> None:
    """``render_complete``: let go of the render's kept frames (about 33 bytes a pixel each,
    five per view layer and view) once its frames still queued are denoised."""
    epoch = RENDER.epoch
    jobs.submit("the last frames (freeing the temporal history)", lambda _cancel: RENDER.release(epoch))


@persistent
def drop_after_cancel(*_args) -> None:
    """``render_cancel``: the queued frames are dropped (:func:`mcdenoise.jobs.cancel`), and so
    is their history; a render after it starts afresh."""
    epoch = RENDER.epoch
    RENDER.restart()
    RENDER.release(epoch)
