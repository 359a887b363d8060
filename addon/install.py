"""'Install PyTorch': pip-install torch, OpenEXR and psutil into the extension's own user folder.

Blender's bundled Python cannot be written to on many systems and must not be polluted, so the
packages go with ``pip --target`` into the extension's user directory, which :mod:`runtime` adds to
``sys.path``. OpenEXR is installed with ``--no-deps``: its numpy requirement would otherwise shadow
the numpy Blender was built with.

An install of gigabytes fails or is cancelled often, so it never touches that folder until it
has succeeded (:class:`PipInstall`): pip writes into a staging folder beside it, which is renamed
into place only when every pip command succeeded; a failure or Esc removes the staging folder
and leaves the previous install as it was. pip's output goes to a log file in the extension's
folder (a pipe nobody reads fills up and hangs pip); its end is shown when pip fails. pip runs as
a subprocess polled by a timer, so Blender stays responsive; Blender's Preferences must allow
online access. A Python without pip runs pip from the wheel ``ensurepip`` bundles.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import bpy
from bpy.props import EnumProperty

from . import modal, runtime, wording

PYPI_INDEX = "https://pypi.org/simple"
LOG_NAME = "install-pytorch.log"

# The pip command line; None: Blender's own (see pip_command). The tests point it at a stand-in
# that behaves like pip without the network.
PIP_OVERRIDE: list[str] | None = None


class InstallError(Exception):
    """Why PyTorch cannot be installed, worded for the artist."""


def offline_problem() -> str | None:
    """Why Blender may not download anything now (Preferences > System > Network), or None."""
    if getattr(bpy.app, "online_access", True):
        return None
    return wording.OFFLINE_FORCED if getattr(bpy.app, "online_access_override", False) else wording.OFFLINE


def bundled_pip_wheel() -> Path | None:
    """The pip wheel shipped with ``ensurepip`` (or where a distribution keeps it)."""
    try:
        import ensurepip  # noqa: PLC0415
    except ImportError:
        return None
    folders = [Path(ensurepip.__file__).parent / "_bundled"]
    if getattr(ensurepip, "_WHEEL_PKG_DIR", None):  # Debian/Fedora keep the wheels outside the stdlib
        folders.append(Path(ensurepip._WHEEL_PKG_DIR))
    wheels = sorted(w for folder in folders if folder.is_dir() for w in folder.glob("pip-*.whl"))
    return wheels[-1] if wheels else None


def pip_command() -> list[str]:
    """How to run pip with Blender's Python: its own pip, else pip straight from ensurepip's
    wheel (pip runs from a wheel; nothing is installed into Blender or the user's site to bootstrap
    it, which ``ensurepip`` itself would need)."""
    if PIP_OVERRIDE:
        return list(PIP_OVERRIDE)
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    wheel = bundled_pip_wheel()
    if wheel is not None:
        return [sys.executable, str(wheel / "pip")]
    raise InstallError(wording.NO_PIP.format(python=sys.executable))


def pip_commands(variant: str, target: str, pip: list[str]) -> list[list[str]]:
    base = pip + ["install", "--upgrade", "--target", target, "--disable-pip-version-check", "--no-input",
                  "--progress-bar", "off"]
    return [
        base + [runtime.TORCH_SPEC, "--index-url", runtime.TORCH_INDEX[variant], "--extra-index-url", PYPI_INDEX],
        base + ["--no-deps", "openexr>=3.2,<4"],
        base + ["psutil>=5.9"],  # the core reads cores and free memory through it
    ]


def log_tail(path: Path, count: int) -> list[str]:
    """The last ``count`` non-empty lines of a log (read from its end: pip's can be megabytes)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line.rstrip() for line in text.splitlines() if line.strip()][-count:]


class PipInstall:
    """One install: pip commands run one after another into ``<target>.staging-<pid>``, which
    replaces ``target`` when they all succeeded. :meth:`step` is polled (a modal timer, or the
    loop of :meth:`run`); :meth:`cancel` stops it; neither ever leaves a half-written ``target``."""

    def __init__(self, variant: str, target: Path) -> None:
        self.target = target
        self.staging = target.with_name(f"{target.name}.staging-{os.getpid()}")
        self.log_path = target.parent / LOG_NAME
        self.commands = pip_commands(variant, str(self.staging), pip_command())
        self.proc: subprocess.Popen | None = None
        self.error = ""
        self.restart_needed = False
        self._log = None

    def start(self) -> PipInstall:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        for stale in self.target.parent.glob(f"{self.target.name}.*-*"):  # a crashed or killed earlier install
            if stale.is_dir() and stale.name.split(".")[-1].split("-")[0] in ("staging", "old"):
                shutil.rmtree(stale, ignore_errors=True)
        self.staging.mkdir()
        self._log = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed by _finish
        return self

    def step(self) -> str:
        """Advance: 'running', 'done' (installed in place) or 'failed' (:attr:`error` says why)."""
        if self.proc is not None:
            code = self.proc.poll()
            if code is None:
                return "running"
            self.proc = None
            if code != 0:
                tail = log_tail(self.log_path, 20)
                print("mcdenoise: pip failed; the end of its output:", *tail, sep="\n  ", file=sys.stderr)
                return self._fail(f"pip failed (exit code {code}): {' | '.join(tail[-3:]) or 'no output'}; "
                                  f"the whole output is in {self.log_path}")
        if self.commands:
            cmd = self.commands.pop(0)
            self._log.write(f"$ {' '.join(cmd)}\n")
            self._log.flush()
            try:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                             creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
            except OSError as exc:
                return self._fail(f"cannot run pip ({cmd[0]}): {exc}")
            return "running"
        try:
            self._swap()
        except OSError as exc:
            return self._fail(f"cannot put the new PyTorch in place of {self.target} ({exc}); restart Blender and "
                              "install again")
        self._finish()
        # A PyTorch this Blender already imported (or failed to) stays loaded until it restarts.
        self.restart_needed = "torch" in sys.modules or runtime.known_import_problem() is not None
        runtime.forget_import_problem()
        runtime.add_paths()
        return "done"

    def _swap(self) -> None:
        """Staging folder to ``target``; the previous install is moved aside first and put back
        if the rename fails, then removed."""
        old = self.target.with_name(f"{self.target.name}.old-{os.getpid()}")
        if self.target.exists():
            os.replace(self.target, old)
        try:
            os.replace(self.staging, self.target)
        except OSError:
            if old.exists():
                os.replace(old, self.target)
            raise
        shutil.rmtree(old, ignore_errors=True)

    def status(self) -> str:
        """pip's last line, for the status bar."""
        last = log_tail(self.log_path, 1)
        return last[0][:100] if last else ""

    def cancel(self) -> None:
        """Stop pip and remove what it wrote; the previous install stays as it was."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        self.commands = []
        self._finish()

    def _fail(self, message: str) -> str:
        self.error = message
        self._finish()
        return "failed"

    def _finish(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.staging, ignore_errors=True)

    def run(self) -> str:
        """The whole install, blocking (scripts, farm setup); Ctrl-C cancels it cleanly."""
        try:
            while (state := self.step()) == "running":
                time.sleep(0.25)
        except BaseException:
            self.cancel()
            raise
        return state


class MCDENOISE_OT_install_torch(bpy.types.Operator):
    """Download PyTorch and OpenEXR into the extension's folder (needs internet once)"""

    bl_idname = "mcdenoise.install_torch"
    bl_label = "Install PyTorch"

    variant: EnumProperty(items=[("CPU", "CPU", "CPU-only build (about 200 MB)"), ("CUDA", "CUDA", "NVIDIA GPU build (about 2.5 GB)")])

    _install: PipInstall | None = None
    _timer = None
    _progress = False  # modal.start began a progress bar

    def _begin(self) -> PipInstall | None:
        problem = offline_problem()
        target = runtime.user_site_dir(create=True)
        if problem is None and target is None:
            problem = "cannot find the extension's user folder"
        if problem is None:
            try:
                return PipInstall(self.variant, target).start()
            except (InstallError, OSError) as exc:
                problem = str(exc)
        self.report({"ERROR"}, problem)
        return None

    def _ended(self, state: str, install: PipInstall) -> set[str]:
        if state == "done":
            now = "restart Blender to load it" if install.restart_needed else "the denoiser now runs inside Blender"
            self.report({"INFO"}, f"PyTorch installed into {install.target}; {now}")
            return {"FINISHED"}
        self.report({"ERROR"}, install.error)
        return {"CANCELLED"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Synchronous, for scripts and farm setup (``blender -b --python-expr ...``)."""
        install = self._begin()
        if install is None:
            return {"CANCELLED"}
        return self._ended(install.run(), install)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        self._install = self._begin()
        if self._install is None:
            return {"CANCELLED"}
        modal.start(self, context, 0.5)
        return {"RUNNING_MODAL"}

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the operator (a file is loaded, the window closes): stop pip, keep the
        previous install."""
        if self._install is not None:
            self._install.cancel()
        modal.stop(self, context)

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type == "ESC":
            self._install.cancel()
            modal.stop(self, context)
            self.report({"WARNING"}, f"PyTorch installation cancelled; {self._install.target} is as it was")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        state = self._install.step()
        if state != "running":
            modal.stop(self, context)
            return self._ended(state, self._install)
        if context.workspace is not None:
            context.workspace.status_text_set(
                f"mcdenoise: installing {self.variant} PyTorch (Esc cancels): {self._install.status()}")
        return {"RUNNING_MODAL"}
