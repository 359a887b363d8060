"""Adding the Denoised pass to a rendered EXR without ever losing or half-writing it.

Nothing here touches ``bpy``: the render handlers and the Denoise button hand over a
:class:`FileJob` (a snapshot taken on Blender's main thread) and this runs in a worker thread.

One file can hold several view layers (and, with compositing on, Blender's ``Composite`` layer
ahead of them): each rendered view layer is denoised from its own passes into its own
``Denoised`` pass, and the composite is never taken for a view layer; a stereo render saved as
one file gets a pass per view, each from that view's passes (the core denoises every view of a
file). All of them go into one temp file beside the target (:func:`mcdenoise.io.atomic.atomic_output`), which is checked (every
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
    for _, unviewed, _ in _viewed_channels(_layout(path)):
        layer, name, _ = split_channel_name(unviewed)
        found.setdefault(layer, set()).add(name.lower())
    return found


def _viewed_channels(layout) -> list[tuple[str, str, tuple[int, int, int, int]]]:
    """(view, name without the view, data window) of every channel, in file order: a stereo file
    holding every view repeats each pass once per view (the core denoises each view)."""
    from mcdenoise.io.passes import channel_view  # noqa: PLC0415

    return [(*channel_view(c.name, part.view, part.multi_view), part.data_window())
            for part in layout.parts for c in part.channels()]


def lossy_codec(path: Path) -> str | None:
    """The lossy codec of a single-part file, which a rewrite would re-encode whole; None for a
    lossless one and for multi-part files (the writer copies their parts' bytes as they are)."""
    layout = _layout(path)
    if len(layout.parts) != 1:
        return None
    value = layout.parts[0].attr(b"compression")
    return LOSSY_CODECS.get(value[0]) if value else None


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
            cancel: threading.Event | None = None, temporal: Callable[[str], Callable | None] | None = None) -> FileResult:
    """Denoise every view layer of ``file_job.path`` into one new file and put it in place;
    ``temporal(layer)`` gives that layer's temporal step (its history, :mod:`mcdenoise.temporal_state`)."""
    runtime.core()
    from mcdenoise.io.atomic import atomic_output  # noqa: PLC0415

    source = file_job.path
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
            outcome = worker.run(job, progress, cancel, temporal(layer or "") if temporal is not None else None)
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
    from mcdenoise.io.passes import file_views  # noqa: PLC0415

    have = set(_viewed_channels(layout))
    names = {(view, name) for view, name, _ in have}
    before = _layout(original)
    views = file_views((part.view, part.multi_view) for part in before.parts) or [""]  # each view gets the pass
    lost = sorted(f"{name} ({view})" if view else name for view, name, window in _viewed_channels(before)
                  if (view, name, window) not in have)
    missing = [f"{p} ({view})" if view else p for p in new_passes for view in views
               if not {(view, f"{p}.{c}") for c in "RGB"} <= names]
    if lost or missing:
        what = f"lost {', '.join(lost[:4])}" if lost else f"has no {', '.join(missing)}"
        raise OutputError(f"{original}: the denoised file {what}; the original is kept")
