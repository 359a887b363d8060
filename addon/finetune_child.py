"""The fine-tuning process the add-on starts (:mod:`finetune_job`): run as a script, never imported
by the add-on.

    <python> finetune_child.py ARGS_JSON                               bpy importable in <python>
    <blender> -b --factory-startup --python finetune_child.py -- ARGS_JSON

It puts the paths it is given on ``sys.path`` (the add-on's vendored core first, then where
Blender found PyTorch and OpenEXR), runs the core's ``finetune_shot`` on the saved copy of the
.blend, and speaks one JSON object per line, each after :data:`PREFIX`, on stdout: ``update``
(the core's progress), then ``result`` or ``error`` (a core error as problem, fix key and details,
which the add-on words in its own terms). Anything else on stdout or stderr is Blender's or
PyTorch's own output. SIGTERM (the panel's Cancel) stops the job after the training step in
flight, with its checkpoint on disk; the weights file is only ever written whole, at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import traceback

PREFIX = "MCDENOISE_FINETUNE "
STOPPED = 143


def say(**message) -> None:
    print(PREFIX + json.dumps(message), flush=True)


def _arguments() -> dict:
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    return json.loads(argv[-1])


def _set_paths(args: dict) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    # Run as a script, this file's folder is first on sys.path: the add-on's own modules
    # (``runtime``, ``status``, ...) must not shadow anything PyTorch or Blender imports.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    for path in reversed(args.get("prepend", [])):
        sys.path.insert(0, path)
    sys.path += [p for p in args.get("append", []) if p not in sys.path]


class Stopped(KeyboardInterrupt):
    """SIGTERM outside the training loop, raised where Ctrl-C would be: past the core's
    ``except Exception`` (a checkpoint being read), so the job unwinds and saves its state."""


def _stop(signum, frame):
    raise Stopped()


def main() -> int:
    args = _arguments()
    _set_paths(args)
    from mcdenoise.finetune.run import work_dir

    work = work_dir(args["output"])
    finished = False
    try:
        finished = _run(args)
        return 0 if finished else STOPPED
    except _Failed:
        return 2
    finally:
        # The work folder goes when it holds nothing to resume: after a finished job (its renders
        # and checkpoints are of no further use), or a job that ended before it had any state
        # (a refused shot). A stopped job's folder stays: the next click resumes it.
        if args.get("clean") and (finished or not (work / "state.json").is_file()):
            shutil.rmtree(work, ignore_errors=True)


class _Failed(Exception):
    """The job ended with an error, already said."""


def _run(args: dict) -> bool:
    """The job; whether it finished (False: stopped, resumable)."""
    import importlib.util

    if importlib.util.find_spec("bpy") is None:
        say(error={"problem": f"{sys.executable} cannot import bpy, which fine-tuning renders the shot with: install "
                              "the render extra in that environment (pip install -e '.[render]'), or set 'Run the "
                              "model' to Inside Blender with PyTorch installed", "fix": None, "details": {}})
        raise _Failed()
    from mcdenoise.errors import McDenoiseError
    from mcdenoise.finetune.run import Options, finetune_shot

    # SIGTERM outside the training loop (rendering, scoring) ends the job here; inside the loop
    # the loop's own handler stops it after the step in flight and finetune_shot returns.
    signal.signal(signal.SIGTERM, _stop)
    say(update={"phase": "start", "done": 0, "total": 0, "eta": 0.0, "text": "opening the shot"})
    try:
        result = finetune_shot(args["blend"], args["output"], Options(**args["options"]),
                               lambda u: say(update={"phase": u.phase, "done": u.done, "total": u.total,
                                                     "eta": u.eta, "text": u.text}))
    except Stopped:
        say(stopped={"text": "stopped"})
        return False
    except McDenoiseError as exc:
        say(error={"problem": exc.problem, "fix": exc.fix, "details": {k: str(v) for k, v in exc.details.items()}})
        raise _Failed() from None
    if not result.finished:
        say(stopped={"text": f"stopped at step {result.steps}"})
        return False
    say(result={"output": str(result.output), "kept": result.kept, "held_frame": result.held_frame,
                "base_psnr": result.base_psnr, "tuned_psnr": result.tuned_psnr, "gain_db": result.gain_db,
                "steps": result.steps, "spent_seconds": result.spent_seconds})
    return True


if __name__ == "__main__":
    try:
        code = main()
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        if isinstance(exc, Stopped):  # SIGTERM between the job's steps
            say(stopped={"text": "stopped"})
            sys.exit(STOPPED)
        traceback.print_exc()
        say(error={"problem": f"fine-tuning failed ({type(exc).__name__}: {exc})", "fix": None, "details": {}})
        code = 1
    sys.stdout.flush()
    sys.exit(code)
