"""Writing a file so that a killed process leaves the old file or the whole new one, never half.

Every file mcdenoise writes (EXR outputs, weights, checkpoints, previews, dataset renders, the
add-on zip) goes to a temp file beside its target, in the same folder so that the final
``os.replace`` is atomic. The temp's name is the one rule everything else reads::

    .<stem>.<host>.<pid>.<token>.tmp<suffix>      .shot_0001.node07.4242.1f3a9c0e.tmp.exr

Hidden (the leading dot keeps it out of folder listings and globs of inputs), with the target's
suffix (so tools that go by the extension still know the format), and naming its owner: a re-run
removes the temps a killed run left, but never the in-flight temp of a process still writing
into the same folder (two farm jobs on one output folder). A temp is *stale* only when its host
is this one and its process is gone; one from another host is kept, since its owner cannot be
checked from here.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import secrets
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from mcdenoise.errors import OutputError

_TEMP = re.compile(r"\.(?P<stem>.+)\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp(?P<suffix>\.[^.]*)?")


def host_name() -> str:
    """This machine's name as temp names hold it: letters, digits, '-' and '_', 32 at most."""
    return re.sub(r"[^A-Za-z0-9-]", "_", socket.gethostname())[:32] or "localhost"


def temp_path(target: str | os.PathLike, pid: int | None = None) -> Path:
    """A fresh temp name for ``target`` owned by process ``pid`` (this one by default) of this
    host. Nothing is created; :func:`atomic_output` is what writers use."""
    target = Path(target)
    owner = os.getpid() if pid is None else pid
    return target.with_name(f".{target.stem}.{host_name()}.{owner}.{secrets.token_hex(4)}.tmp{target.suffix}")


def is_temp(path: str | os.PathLike) -> bool:
    """True for a name :func:`temp_path` makes: never an input, never a finished output."""
    return _TEMP.fullmatch(Path(path).name) is not None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs; True when that cannot be told, so an
    unknown owner's files are kept rather than deleted."""
    if sys.platform == "win32":  # os.kill(pid, 0) would send it Ctrl-C there
        return _pid_alive_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _pid_alive_windows(pid: int) -> bool:
    import ctypes  # noqa: PLC0415

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return kernel32.GetLastError() != 87  # ERROR_INVALID_PARAMETER: no such process
    try:
        code = ctypes.c_ulong()
        return not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)) or code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def is_stale(path: str | os.PathLike) -> bool:
    """A temp whose owner is provably gone: written on this host by a process no longer alive."""
    m = _TEMP.fullmatch(Path(path).name)
    return m is not None and m["host"] == host_name() and not pid_alive(int(m["pid"]))


def stale_temps(target: str | os.PathLike) -> list[Path]:
    """The stale temps of ``target`` beside it (those of other targets are not looked at)."""
    target = Path(target)
    found = []
    for path in target.parent.glob(f".{glob.escape(target.stem)}.*.tmp{glob.escape(target.suffix)}"):
        m = _TEMP.fullmatch(path.name)
        if m and m["stem"] == target.stem and (m["suffix"] or "") == target.suffix and is_stale(path):
            found.append(path)
    return sorted(found)


def remove_stale_temps(target: str | os.PathLike) -> int:
    """Delete what killed writers of ``target`` left (files, or folders written as a whole);
    returns how many were removed."""
    removed = 0
    for path in stale_temps(target):
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
        except OSError:
            pass
    return removed


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it into place only if the block succeeds.

    The temp exists (empty, private) when the block starts; whatever the block writes there
    becomes ``path`` with the permissions a new file gets (umask), or those of the file it
    replaces. An ``OSError`` becomes :class:`OutputError`; on any failure the temp is removed.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{path}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{path}: output folder {folder} is not writable", fix="out_dir")
    tmp = None
    try:
        tmp = create_temp(path)
        yield tmp
        # The temp is private (0600); the output must get the permissions any new file would
        # (umask), or those of the file it replaces, so farm users can read it.
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc}); check free space and permissions") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def create_temp(target: Path) -> Path:
    """Create (empty, private) and return a fresh temp of ``target`` owned by this process."""
    while True:
        tmp = temp_path(target)
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            continue
        return tmp


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
