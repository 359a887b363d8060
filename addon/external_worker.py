"""The script an external Python runs for the add-on: one process serving many denoises.

Started by :mod:`external` as ``<python> external_worker.py``. Starting an interpreter and
importing torch costs seconds, more than denoising a small frame, so one process stays alive
and runs ``mcdenoise <argv>`` (the CLI's own ``main``, so errors, warnings and exit codes are the
command line's) for each request.

Protocol, one JSON object per line: the worker first writes ``{"ready": true, "pid", "version"}``
(or ``{"ready": false, "problem"}`` and exits); then for each request ``{"id", "argv"}`` read from
stdin it writes ``{"id", "code", "stdout", "stderr"}`` with what the CLI printed. EOF on stdin or
``{"quit": true}`` ends it. The protocol has the real stdout to itself: file descriptor 1 is
pointed at stderr (the add-on's log file), so a C library that prints cannot corrupt it.

Not imported by Blender, and standard library only at module level: it runs in another
environment, whose own ``mcdenoise`` it imports.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import traceback


def _protocol_stream():
    """A private copy of stdout for the protocol; fd 1 then goes to stderr."""
    stream = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    return stream


def _send(stream, message: dict) -> None:
    stream.write(json.dumps(message) + "\n")
    stream.flush()


def _run(cli_main, argv: list[str]) -> tuple[int, str, str]:
    """One CLI run with its Python-level output captured (threads it starts included)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli_main(argv)
        except SystemExit as exc:  # argparse refusing an option of another mcdenoise version
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        except Exception:  # noqa: BLE001 - a bug in one request must not end the worker
            traceback.print_exc()
            code = 1
    print(err.getvalue(), end="", file=sys.__stderr__, flush=True)  # the log keeps everything
    return int(code or 0), out.getvalue(), err.getvalue()


def _release() -> None:
    """Between frames this process waits while Blender renders the next one: hand back the
    memory the last frame used (the CLI keeps freed memory for a process that only denoises, and
    PyTorch keeps freed GPU blocks), so Cycles has it."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    # An older mcdenoise without the allocator module: nothing to hand back.
    with contextlib.suppress(Exception):
        if cuda is not None and cuda.is_initialized():
            cuda.empty_cache()
        importlib.import_module("mcdenoise.inference.allocator").return_freed_memory()


def main() -> int:
    # Python put this script's folder (the add-on's) first on sys.path: its modules must not
    # shadow the environment's.
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == here:
        del sys.path[0]
    protocol = _protocol_stream()
    try:
        # Imported by name: the add-on's build vendors every core module its files import, and
        # the CLI belongs to the external environment, not to the extension.
        mcdenoise = importlib.import_module("mcdenoise")
        cli_main = importlib.import_module("mcdenoise.cli").main
    except Exception as exc:  # noqa: BLE001 - told to the add-on, which words it
        _send(protocol, {"ready": False, "problem": f"{type(exc).__name__}: {exc}"})
        return 1
    _send(protocol, {"ready": True, "pid": os.getpid(), "version": getattr(mcdenoise, "__version__", "?")})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if request.get("quit"):
            break
        code, out, err = _run(cli_main, list(request["argv"]))
        _release()
        _send(protocol, {"id": request.get("id"), "code": code, "stdout": out, "stderr": err})
    return 0


if __name__ == "__main__":
    sys.exit(main())
