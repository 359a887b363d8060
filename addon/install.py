"""'Install PyTorch': pip-install torch, OpenEXR and psutil into the extension's own user folder.

Blender's bundled Python cannot be written to on many systems and must not be polluted, so the
packages go with ``pip --target`` into the extension's user directory, which :mod:`runtime` adds to
``sys.path``. OpenEXR is installed with ``--no-deps``: its numpy requirement would otherwise shadow
the numpy Blender was built with. pip runs as a subprocess polled by a timer, so Blender stays
responsive during a download of hundreds of megabytes and Esc stops it.
"""

from __future__ import annotations

import subprocess
import sys

import bpy
from bpy.props import EnumProperty

from . import runtime


def pip_commands(variant: str, target: str) -> list[list[str]]:
    pip = [sys.executable, "-m", "pip", "install", "--upgrade", "--target", target, "--disable-pip-version-check"]
    return [
        pip + [runtime.TORCH_SPEC, "--index-url", runtime.TORCH_INDEX[variant], "--extra-index-url", "https://pypi.org/simple"],
        pip + ["--no-deps", "openexr>=3.2,<4"],
        pip + ["psutil>=5.9"],  # the core reads cores and free memory through it
    ]


class MCDENOISE_OT_install_torch(bpy.types.Operator):
    """Download PyTorch and OpenEXR into the extension's folder (needs internet once)"""

    bl_idname = "mcdenoise.install_torch"
    bl_label = "Install PyTorch"

    variant: EnumProperty(items=[("CPU", "CPU", "CPU-only build (about 200 MB)"), ("CUDA", "CUDA", "NVIDIA GPU build (about 2.5 GB)")])

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        target = runtime.user_site_dir(create=True)
        if target is None:
            self.report({"ERROR"}, "cannot find the extension's user folder")
            return {"CANCELLED"}
        self._commands = pip_commands(self.variant, str(target))
        self._proc = None
        self._timer = context.window_manager.event_timer_add(0.5, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Synchronous, for scripts and farm setup (``blender -b --python-expr ...``)."""
        target = runtime.user_site_dir(create=True)
        for cmd in pip_commands(self.variant, str(target)):
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                err = done.stderr.strip().splitlines()
                self.report({"ERROR"}, f"pip failed: {err[-1] if err else done.returncode}")
                return {"CANCELLED"}
        runtime.add_paths()
        self.report({"INFO"}, "PyTorch installed")
        return {"FINISHED"}

    def _stop(self, context: bpy.types.Context) -> None:
        context.window_manager.event_timer_remove(self._timer)
        context.workspace.status_text_set(None)

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type == "ESC" and self._proc is not None:
            self._proc.terminate()
            self._stop(context)
            self.report({"WARNING"}, "PyTorch installation cancelled")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if self._proc is None or self._proc.poll() is not None:
            if self._proc is not None and self._proc.returncode != 0:
                err = (self._proc.stderr.read() or "").strip().splitlines()
                self._stop(context)
                self.report({"ERROR"}, f"pip failed: {err[-1] if err else self._proc.returncode}; check the internet connection")
                return {"CANCELLED"}
            if not self._commands:
                self._stop(context)
                runtime.add_paths()
                self.report({"INFO"}, "PyTorch installed; the denoiser now runs inside Blender")
                return {"FINISHED"}
            self._proc = subprocess.Popen(self._commands.pop(0), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        context.workspace.status_text_set(f"mcdenoise: installing {self.variant} PyTorch with pip (Esc cancels)")
        return {"RUNNING_MODAL"}
