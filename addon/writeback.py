"""Adding the Denoised pass to a rendered EXR without ever losing or half-writing it.

Nothing here touches ``bpy``: the render handlers and the Denoise button hand over a
:class:`FileJob` (a snapshot taken on Blender's main thread) and this runs in a worker thread.

One file can hold several view layers (and, with compositing on, Blender's ``Composite`` layer
ahead of them): each rendered view layer is denoised from its own passes into its own
``Denoised`` pass, and the composite is never taken for a view layer. All of them go into one
temp file beside the target (:func:`mcdenoise.io.atomic.atomic_output`), which is checked (every
chunk, every original channel, the new passes) before it replaces the target, so the artist's
file is either untouched or complete. A single-part file with a lossy codec (DWAA, B44, ...) is
never rewritten in place: the EXR writer re-encodes every pass of a single-part file, so each
would lose quality again; the result goes to a ``_denoised`` copy beside it instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from . import runtime, worker

# OpenEXR's compression ids (the ``compression`` attribute) whose codec loses data: PXR24
# (float channels), B44, B44A, DWAA, DWAB.
LOSSY_CODECS = {5: "PXR24", 6: "B44", 7: "B44A", 8: "DWAA", 9: "DWAB"}
COPY_SUFFIX = "_denoised"
# The layer Blender writes the compositor's result into, ahead of the view layers: graded
# colour without albedo or normal of its own, never denoised as if it were a render.
COMPOSITE = "Composite"


@dataclass
class FileJob:
    """One EXR to denoise: ``job`` holds the settings (its paths are set per step here)."""

    path: Path
    job: worker.Job
    layers: tuple[str, ...]  # the scene's view layers; the file's others (Composite) are left alone
    copy: bool = False  # write ``<name>_denoised.exr`` beside it instead of into it
    out_path: Path | None = None  # where the copy goes (default: beside ``path``)


@dataclass
class FileResult:
    path: Path  # the file that now holds the Denoised passes
    layers: list[str]
    denoised: dict[str, object] = field(default_factory=dict)  # layer -> HxWx3 array (inside Blender only)
    alpha: dict[str, object] = field(default_factory=dict)  # layer -> HxW alpha of its colour pass, where it has one
    warnings: list[str] = field(default_factory=list)
    note: str = ""  # why the pass went to a copy rather than into the rendered file


def copy_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}{COPY_SUFFIX}.exr")


def _layout(path: Path):
    """The file's parts (the core's byte-level header parser: pure Python, so this works in a
    Blender whose Python cannot import OpenEXR and runs the model in an external Python)."""
    runtime.core()
    from mcdenoise.errors import InputFileError  # noqa: PLC0415
    from mcdenoise.io import header  # noqa: PLC0415

    try:
        with open(path, "rb") as fh:
            return header.read_layout(fh)
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except (OSError, header.HeaderError) as exc:
        raise InputFileError(f"{path}: cannot read its EXR header ({exc}); re-render it") from exc


def file_layers(path: Path) -> dict[str, set[str]]:
    """The layers of a multilayer EXR in file order ('' for plain channels), each with the
    names of its passes in lower case."""
    from mcdenoise.io.passes import split_channel_name  # noqa: PLC0415

    found: dict[str, set[str]] = {}
    for part in _layout(path).parts:
        for channel in part.channels():
            layer, name, _ = split_channel_name(channel.name)
            found.setdefault(layer, set()).add(name.lower())
    return found


def lossy_codec(path: Path) -> str | None:
    """The lossy codec of a single-part file, which a rewrite would re-encode whole; None for a
    lossless one and for multi-part files (the writer copies their parts' bytes as they are)."""
    layout = _layout(path)
    if len(layout.parts) != 1:
        return None
    value = layout.parts[0].attr(b"compression")
    return LOSSY_CODECS.get(value[0]) if value else None


def check_one_view(path: Path) -> None:
    """Refuse a stereo (multi-view) render saved as one file: its views share pass names, which
    the core's pass lookup cannot tell apart yet. One file per view is denoised view by view."""
    parts = _layout(path).parts
    if any(part.attr(b"view") is not None or part.attr(b"multiView") is not None for part in parts):
        raise worker.AddonError(
            f"{path}: a stereo render with every view in one EXR cannot be denoised yet; set Output Properties > "
            "Views > Views Format to 'Individual' (one file per view, each gets its Denoised pass)"
        )


def layers_to_denoise(path: Path, scene_layers: tuple[str, ...]) -> list[str | None]:
    """The scene's view layers this file holds, in the scene's order. For a file from elsewhere (no
    layer of the scene), every layer with a colour pass but Blender's composite; None (the
    core's choice) when there is none such."""
    from mcdenoise.io.passes import PassNames  # noqa: PLC0415

    in_file = file_layers(path)
    color = {name.lower() for name in PassNames().color}
    wanted = [layer for layer in scene_layers if layer in in_file]
    wanted = wanted or [layer for layer, passes in in_file.items() if layer and layer != COMPOSITE and passes & color]
    return wanted or [None]


def denoise(file_job: FileJob, progress: Callable[[int, int], None] | None = None,
            cancel: threading.Event | None = None) -> FileResult:
    """Denoise every view layer of ``file_job.path`` into one new file and put it in place."""
    runtime.core()
    from mcdenoise.io.atomic import atomic_output  # noqa: PLC0415

    source = file_job.path
    check_one_view(source)
    target = file_job.out_path or (copy_path(source) if file_job.copy else source)
    codec = lossy_codec(source)
    note = ""
    if target == source and codec is not None:
        target = copy_path(source)
        note = (f"{source.name} left untouched: a single-part EXR with lossy {codec} compression would lose quality "
                "in every pass if rewritten; use a lossless codec (ZIP, PIZ) to get the pass in the file itself")
    layers = layers_to_denoise(source, file_job.layers)
    result = FileResult(target, [], note=note)
    with atomic_output(target) as tmp:
        read_from = source
        for layer in layers:
            job = replace(file_job.job, in_path=read_from, out_path=tmp, layer=layer)
            outcome = worker.run(job, progress, cancel)
            result.warnings += [note for note in outcome.warnings if note not in result.warnings]
            result.layers.append(layer or "")
            if outcome.denoised is not None:
                result.denoised[layer or ""] = outcome.denoised
            if outcome.alpha is not None:
                result.alpha[layer or ""] = outcome.alpha
            read_from = tmp
        verify(tmp, source, [join(layer, file_job.job.pass_name) for layer in result.layers])
    return result


def join(layer: str, pass_name: str) -> str:
    return f"{layer}.{pass_name}" if layer else pass_name


def verify(written: Path, original: Path, new_passes: list[str]) -> None:
    """Refuse to put ``written`` in place of ``original`` unless it is whole (every chunk's
    leader checked against its header), keeps every channel of the original with its data
    window, and holds each new pass; the original is then left as it was."""
    from mcdenoise.errors import OutputError  # noqa: PLC0415
    from mcdenoise.io import header  # noqa: PLC0415

    with open(written, "rb") as fh:
        try:
            layout = header.read_layout(fh)
            problem = header.chunk_problem(fh, layout)
        except header.HeaderError as exc:
            problem = str(exc)
    if problem:
        raise OutputError(f"{original}: the denoised file came out incomplete ({problem}); the original is kept")
    have = {(c.name, part.data_window()) for part in layout.parts for c in part.channels()}
    names = {name for name, _ in have}
    lost = sorted(c.name for part in _layout(original).parts for c in part.channels()
                  if (c.name, part.data_window()) not in have)
    missing = [p for p in new_passes if not {f"{p}.{c}" for c in "RGB"} <= names]
    if lost or missing:
        what = f"lost {', '.join(lost[:4])}" if lost else f"has no {', '.join(missing)}"
        raise OutputError(f"{original}: the denoised file {what}; the original is kept")
