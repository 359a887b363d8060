"""Which output each input frame gets, and whether an earlier run already finished it.

Outputs are written atomically, so an output that exists, passes the truncation check and holds
the denoised pass is finished and a re-run skips it; the runner removes the temp files a killed
run left (:func:`mcdenoise.io.atomic.remove_stale_temps`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mcdenoise.batch.sequence import FrameSource
from mcdenoise.errors import InputFileError, McDenoiseError, OutputError
from mcdenoise.inference.frames import check_output_path
from mcdenoise.io.exr import file_passes, open_exr


@dataclass(frozen=True)
class Job:
    source: FrameSource
    output: Path
    # A temporal warm-up frame (mcdenoise.temporal.plan): denoised to fill the history, never
    # written nor counted.
    warmup: bool = False


def output_path(path: Path, out_dir: Path | None, suffix: str) -> Path:
    folder = out_dir if out_dir is not None else path.parent
    return folder / f"{path.stem}{suffix}.exr"


def plan_jobs(sources: list[FrameSource], output: Path | None = None, out_dir: Path | None = None, suffix: str = "_denoised") -> list[Job]:
    """Pair each input with its output, refusing plans that would clobber one output with
    another frame or write into a folder that cannot take it, before any work is done."""
    if output is not None:
        if len(sources) != 1:
            raise McDenoiseError(f"{len(sources)} input frames but one output file", fix="one_output")
        jobs = [Job(sources[0], check_output_path(output))]
    else:
        if out_dir is not None:
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"{out_dir}: cannot create output folder ({exc.strerror})", fix="out_dir") from exc
        jobs = [Job(s, output_path(s.path, out_dir, suffix)) for s in sources]
        # A folder or glob re-run beside its own outputs must not denoise those outputs again.
        outputs = {_resolved(j.output) for j in jobs}
        jobs = [j for j in jobs if _resolved(j.source.path) not in outputs or _resolved(j.output) == _resolved(j.source.path)]
    seen: dict[Path, Path] = {}
    for job in jobs:
        key = _resolved(job.output)
        if key in seen and seen[key] != job.source.path:
            raise OutputError(f"{job.output}: both {seen[key]} and {job.source.path} would be written here", fix="output_clash")
        seen[key] = job.source.path
    for folder in sorted({j.output.parent for j in jobs}):
        if not folder.is_dir():
            raise OutputError(f"{folder}: output folder does not exist", fix="out_dir_create")
        if not os.access(folder, os.W_OK):
            raise OutputError(f"{folder}: output folder is not writable", fix="out_dir_permissions")
    return jobs


def _resolved(path: Path) -> Path:
    """``path`` with its links followed, refusing one that cannot be (a symlink loop), which
    ``Path.resolve`` raises as RuntimeError or OSError depending on the Python version."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:
        raise InputFileError(f"{path}: cannot follow its symbolic links ({getattr(exc, 'strerror', None) or exc})") from exc


def output_is_complete(path: Path, pass_name: str) -> bool:
    """True for an output a previous run finished: whole file (every chunk's leader checked
    against the header) with the denoised pass in it, marked as written by mcdenoise (a file
    that only happens to have a pass of that name is denoised again, not trusted). Reads
    headers only, so checking a finished 8K sequence is quick."""
    if not path.is_file():
        return False
    try:
        f = open_exr(path, header_only=True)
    except McDenoiseError:
        return False
    return any(name == pass_name and ours for (_, name), ours in file_passes(f).items())
