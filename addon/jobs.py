"""The denoise queue: render handlers only queue work, one worker thread does it in order, and
what it hands back for Blender's data runs on the main thread.

In an interactive Blender the render handlers run on the render job's thread, where Blender's
data must not be written; the denoise itself would stall the render. So a handler queues a
*task* (a function of the cancel event, holding a snapshot of the settings), the worker thread
runs it while Cycles renders the next frame, and a task's *follow-up* (a new image, say) is run
by :func:`poll`, a ``bpy.app.timers`` callback on the main thread. A command-line render
(``blender -b``, or ``bpy`` as a module) has no timers running and would exit with frames still
queued: the handlers call :func:`wait` at ``render_complete`` (and at exit), so every frame
written is denoised before the process ends.
"""

from __future__ import annotations

import collections
import queue
import threading
import traceback
from typing import Callable

from . import status

Task = Callable[[threading.Event], Callable[[], None] | None]

_tasks: "queue.Queue[tuple[int, str, Task]]" = queue.Queue()
_follow_ups: collections.deque = collections.deque()
_cancel = threading.Event()
_state = {"generation": 0, "thread": None, "last": None}
_lock = threading.Lock()
POLL_SECONDS = 0.25


def submit(label: str, task: Task) -> None:
    """Queue ``task`` (run in the worker thread, ``label`` shown while it runs)."""
    with _lock:
        _tasks.put((_state["generation"], label, task))
        if _state["thread"] is None:  # the worker ends when the queue is empty: no idle thread at exit
            _state["thread"] = _state["last"] = threading.Thread(target=_work, name="mcdenoise-queue", daemon=True)
            _state["thread"].start()


def on_main_thread(follow_up: Callable[[], None]) -> None:
    """Run ``follow_up`` on the main thread: at the next :func:`poll` or :func:`wait`."""
    _follow_ups.append(follow_up)


def pending() -> int:
    """Tasks queued or running."""
    return _tasks.unfinished_tasks


def _work() -> None:
    while True:
        with _lock:
            try:
                generation, label, task = _tasks.get_nowait()
            except queue.Empty:
                _state["thread"] = None
                return
        try:
            with _lock:
                current = generation == _state["generation"]
                if current:
                    _cancel.clear()
            if current:  # tasks queued before a cancel are dropped
                waiting = _tasks.unfinished_tasks - 1
                status.busy(f"denoising {label}" + (f" ({waiting} more queued)" if waiting else ""))
                follow_up = task(_cancel)
                if follow_up is not None:
                    _follow_ups.append(follow_up)
        except BaseException:  # noqa: BLE001 - a task reports its own errors; a bug must not end the queue
            traceback.print_exc()
        finally:
            if _tasks.unfinished_tasks <= 1:
                status.busy("")
            _tasks.task_done()


def run_follow_ups() -> None:
    """Run what tasks handed back for Blender's data (main thread only)."""
    while _follow_ups:
        follow_up = _follow_ups.popleft()
        try:
            follow_up()
        except Exception:  # noqa: BLE001 - never take Blender down
            traceback.print_exc()


def poll() -> float:
    """The main thread's timer: follow-ups, and a redraw of the panels when the status moved."""
    run_follow_ups()
    if status.take_changed():
        _redraw()
    return POLL_SECONDS


def _redraw() -> None:
    import bpy  # noqa: PLC0415

    for window in getattr(bpy.context.window_manager, "windows", []):
        for area in window.screen.areas:
            if area.type in {"PROPERTIES", "IMAGE_EDITOR"}:
                area.tag_redraw()


def wait() -> None:
    """Block until every queued task ran and the worker thread has ended, then run their
    follow-ups (main thread only). A worker thread still alive when the interpreter shuts down
    crashes Blender 4.2's exit."""
    _tasks.join()
    thread = _state["last"]  # with nothing queued it ends at once
    if thread is not None and thread is not threading.current_thread():
        thread.join(timeout=10)
    run_follow_ups()


def cancel() -> int:
    """Stop the running task at its next tile (an external worker is killed) and drop the
    queued ones; how many were stopped. The files they would have changed stay as they are."""
    with _lock:
        stopped = _tasks.unfinished_tasks
        _state["generation"] += 1
        _cancel.set()
    return stopped
