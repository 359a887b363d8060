"""The timer, progress bar and status text of the add-on's modal operators, started and ended
in one place.

Denoise, Denoise sequence and Install PyTorch all run their work off the main thread and poll
it from a window timer. Each must remove its timer, end the progress bar it began and clear the
status text on every way out (done, Esc, failure, Blender calling ``cancel()`` when a file
loads); one pair of functions keeps those exits identical.
"""

from __future__ import annotations

import bpy


def start(op: bpy.types.Operator, context: bpy.types.Context, interval: float, progress_total: int = 0) -> None:
    """Poll ``op.modal`` every ``interval`` seconds; with ``progress_total`` > 0, show a progress
    bar from 0 to that total as well."""
    wm = context.window_manager
    op._timer = wm.event_timer_add(interval, window=context.window)
    op._progress = progress_total > 0
    if op._progress:
        wm.progress_begin(0, progress_total)
    wm.modal_handler_add(op)


def stop(op: bpy.types.Operator, context: bpy.types.Context) -> None:
    """Remove the timer, end the progress bar and clear the status text; safe to call twice."""
    wm = context.window_manager
    if getattr(op, "_timer", None) is not None:
        wm.event_timer_remove(op._timer)
        op._timer = None
    if getattr(op, "_progress", False):
        wm.progress_end()
        op._progress = False
    if context.workspace is not None:
        context.workspace.status_text_set(None)
