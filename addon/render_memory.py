"""The model's memory around renders: freed when a render (or an animation's next frame)
starts, so Cycles has the GPU memory the in-Blender model would otherwise keep
(:func:`mcdenoise.worker.render_started`); kept again between renders, where the Denoise
button reuses it. Its own handlers, registered after :mod:`handlers`: at ``render_complete`` a
command-line render first finishes its queue there, then the render counts as ended."""

from __future__ import annotations

import bpy
from bpy.app.handlers import persistent

from . import worker


@persistent
def on_render_start(*_args) -> None:
    worker.render_started()


@persistent
def on_render_end(*_args) -> None:
    worker.render_ended()


HANDLERS = (
    (bpy.app.handlers.render_pre, on_render_start),
    (bpy.app.handlers.render_complete, on_render_end),
    (bpy.app.handlers.render_cancel, on_render_end),
)


def register() -> None:
    for event, handler in HANDLERS:
        if handler not in event:
            event.append(handler)


def unregister() -> None:
    for event, handler in HANDLERS:
        while handler in event:
            event.remove(handler)
    worker.render_ended()
    worker.release_models()
