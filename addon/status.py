"""What the add-on did last and what it is doing now, as the panel shows it.

Kept in this module, not in a scene property: a saved property marks the .blend modified after
every frame and travels into the file. Any thread may set it (the worker reports as frames
finish); the panel reads it, redrawn from the main thread's timer (:func:`mcdenoise.jobs.poll`).
"""

from __future__ import annotations

import sys
import threading

_lock = threading.Lock()
_state = {"message": "", "error": False, "busy": "", "changed": False}


def report(message: str, error: bool = False) -> None:
    """Keep ``message`` for the panel and print it (the system console is where a farm's or a
    command-line render's log is read)."""
    with _lock:
        _state.update(message=message, error=error, changed=True)
    print(f"mcdenoise: {'ERROR: ' if error else ''}{message}", file=sys.stderr if error else sys.stdout, flush=True)


def busy(text: str) -> None:
    """What is being denoised now ('' when idle)."""
    with _lock:
        _state.update(busy=text, changed=True)


def last() -> str:
    """The last result, errors prefixed with 'Error: '."""
    with _lock:
        return f"Error: {_state['message']}" if _state["error"] else _state["message"]


def is_error() -> bool:
    with _lock:
        return bool(_state["error"])


def now() -> str:
    with _lock:
        return _state["busy"]


def take_changed() -> bool:
    """Whether anything changed since the last call (the timer then redraws the panels)."""
    with _lock:
        changed, _state["changed"] = _state["changed"], False
        return changed


def clear() -> None:
    with _lock:
        _state.update(message="", error=False, busy="", changed=True)
