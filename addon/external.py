"""The external-Python backend: one worker process kept alive for every frame.

A new interpreter per frame would import torch and load the model again each time, seconds
that a small frame does not take. So :func:`request` starts ``<python> external_worker.py`` once,
sends it one JSON line per denoise (the ``mcdenoise`` command line it should run) and reads one
JSON line back. The worker is started again when it has died (killed, crashed, out of memory)
and closed when the add-on is disabled or Blender exits (:func:`close`; its stdin also ends
when Blender does, which ends it).

Its stderr goes to a log file, never to a pipe nobody reads (which fills and hangs the
worker); when the worker dies, the end of that log is the error shown. Nothing here touches
``bpy``: requests come from the denoise worker thread.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import subprocess
import tempfile
import threading
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "external_worker.py"
START_SECONDS = 300  # importing torch from a cold network drive can take minutes
POLL_SECONDS = 0.2


class WorkerError(Exception):
    """The worker could not be started or died: the message says why, with its log's end."""


class Cancelled(Exception):
    """The request was cancelled (the caller raises the core's own ``Cancelled``)."""


class Worker:
    """One worker process for one Python: its pipes, its log and the thread draining stdout."""

    def __init__(self, python: str, env: dict[str, str]) -> None:
        self.python = python
        fd, log = tempfile.mkstemp(prefix="mcdenoise-worker-", suffix=".log")
        self.log_path = Path(log)
        try:
            with os.fdopen(fd, "wb") as log_file:
                self.proc = subprocess.Popen(
                    [python, "-u", str(SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file,
                    env=env, text=True, encoding="utf-8", errors="replace", bufsize=1,
                    creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
                )
        except OSError as exc:
            self.log_path.unlink(missing_ok=True)
            raise WorkerError(f"cannot start the external Python {python}: {exc}") from None
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._drain, name="mcdenoise-worker-reader", daemon=True).start()
        self.pid = self.proc.pid
        self.ready = False
        self.next_id = 0

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, count: int = 6) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return " | ".join([ln.strip() for ln in text.splitlines() if ln.strip()][-count:])

    def _died(self, doing: str) -> WorkerError:
        code = self.proc.wait()
        tail = self.log_tail()
        return WorkerError(f"the external Python ({self.python}) exited with code {code} while {doing}"
                           + (f": {tail}" if tail else "") + f" (log: {self.log_path})")

    def _read(self, cancel: threading.Event | None, seconds: float | None, doing: str) -> dict:
        waited = 0.0
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            try:
                line = self.lines.get(timeout=POLL_SECONDS)
            except queue.Empty:
                waited += POLL_SECONDS
                if seconds is not None and waited > seconds:
                    self.kill()
                    raise WorkerError(f"the external Python ({self.python}) did not answer in {seconds} s while {doing} "
                                      f"(log: {self.log_path})") from None
                continue
            if line is None:
                raise self._died(doing)
            try:
                return json.loads(line)
            except ValueError:
                continue  # not the protocol's: nothing else should write there, but never trust it

    def start(self, cancel: threading.Event | None) -> None:
        hello = self._read(cancel, START_SECONDS, "starting")
        if not hello.get("ready"):
            self.proc.wait()
            raise WorkerError(f"{self.python} cannot import mcdenoise ({hello.get('problem')}): install mcdenoise in that "
                              "environment (pip install -e . in a clone), or point 'External Python' at one that has it")
        self.ready = True

    def request(self, argv: list[str], cancel: threading.Event) -> dict:
        """Run ``mcdenoise <argv>`` in the worker: ``{"code", "stdout", "stderr"}``. Cancelling
        sends SIGTERM, which the CLI turns into a clean stop of that one run (exit code 143);
        where that is not possible (Windows) the worker is killed and started again next time."""
        self.next_id += 1
        self.proc.stdin.write(json.dumps({"id": self.next_id, "argv": argv}) + "\n")
        self.proc.stdin.flush()
        try:
            return self._read(cancel, None, "denoising")
        except Cancelled:
            self.proc.terminate()
            try:
                reply = self._read(None, 30, "cancelling")
            except WorkerError:  # killed, not stopped: it is started again next time
                raise Cancelled() from None
            if reply.get("code") == 0:  # it finished before the signal came
                return reply
            raise

    def close(self, keep_log: bool = False) -> None:
        """Ask the worker to end, kill it if it does not, and remove its log (kept when an
        error message names it)."""
        if self.alive():
            try:
                self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                self.kill()
        if not keep_log:
            self.log_path.unlink(missing_ok=True)

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass


_lock = threading.Lock()  # one request at a time: the queue and the Denoise button may overlap
_worker: dict[str, Worker] = {}


def request(python: str, argv: list[str], env: dict[str, str], cancel: threading.Event) -> dict:
    """``mcdenoise <argv>`` run by the worker of ``python`` (started, or started again, as
    needed); raises :class:`Cancelled` or :class:`WorkerError`."""
    while not _lock.acquire(timeout=POLL_SECONDS):  # another request runs: Esc must still work meanwhile
        if cancel.is_set():
            raise Cancelled()
    try:
        worker = _worker.get("current")
        if worker is not None and (worker.python != python or not worker.alive()):
            worker.close()  # another Python chosen in the preferences, or it died since the last frame
            worker = None
        if worker is None:
            worker = _worker["current"] = Worker(python, env)
        try:
            if not worker.ready:
                worker.start(cancel)
            try:
                return worker.request(argv, cancel)
            except (OSError, ValueError):  # a broken pipe (ValueError: its stdin is closed)
                if worker.alive():
                    raise
            # It died between the check above and the request: it never saw it, so start one again.
            worker.close()
            worker = _worker["current"] = Worker(python, env)
            worker.start(cancel)
            return worker.request(argv, cancel)
        except (Cancelled, WorkerError) as exc:
            if not worker.alive():
                _worker.pop("current", None)
                worker.close(keep_log=str(worker.log_path) in str(exc))
            raise
    finally:
        _lock.release()


def pid() -> int | None:
    """The running worker's process id (None when there is none): the panel and tests show it."""
    worker = _worker.get("current")
    return worker.pid if worker is not None and worker.alive() else None


def close() -> None:
    """End the worker (the add-on is disabled, or Blender exits). A request still running after
    a few seconds (its cancel is on its way) does not hold this up: its worker is ended under it."""
    locked = _lock.acquire(timeout=5)
    try:
        worker = _worker.pop("current", None)
    finally:
        if locked:
            _lock.release()
    if worker is not None:
        worker.close()


# Registered when the add-on is imported, before its render handlers register their own exit
# hook, so at exit the queue is finished first and the worker closed after.
atexit.register(close)
