"""Which EXR channels hold each input feature (colour, albedo, normal, motion vectors).

Renderers name their AOVs differently, so the lookup is driven by a small table of candidate
pass names (a *preset*) that users can override per pass. Blender's names are the default
because the add-on and the training data both come from Blender. The features themselves, and
the component names each may have, are in :mod:`mcdenoise.features`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from mcdenoise.features import RGB, XYZ  # noqa: F401 (component names, imported from here by the EXR code)

# A channel's full name is "<layer>.<pass>.<component>" (Blender multilayer), "<pass>.<component>"
# (single-part layered files) or just "<component>" (plain RGB/RGBA files, pass name "").
# A stereo (multi-view) file holds each pass once per view, in one of OpenEXR's two ways:
# multi-part, each part naming its view in a ``view`` attribute and the channels named as above
# (Blender 5.0: part "ViewLayer.Combined-left"), or one part with a ``multiView`` list and the view
# as the channel name's last-but-one segment ("ViewLayer.Combined.left.R", Blender 4.2-4.5).


@dataclass(frozen=True)
class PassNames:
    """Candidate pass names per feature, tried in order and case-insensitively. ``layer`` picks
    a view layer when a file holds several (None: the first layer that has a colour pass);
    ``view`` a view of a stereo file (None: its first view, OpenEXR's default one).

    Blender's colour candidates start with ``Noisy Image``: with Cycles' own denoiser on,
    ``Combined`` is already denoised and the raw render is in ``Noisy Image`` of the same layer.
    An explicit colour pass (``with_overrides``) replaces the whole list.
    """

    color: tuple[str, ...] = ("Noisy Image", "Combined", "Image", "")
    albedo: tuple[str, ...] = ("Denoising Albedo", "DenoisingAlbedo", "Albedo")
    normal: tuple[str, ...] = ("Denoising Normal", "DenoisingNormal", "Normal")
    vector: tuple[str, ...] = ("Vector",)
    layer: str | None = None
    view: str | None = None

    def candidates(self, feature: str) -> tuple[str, ...]:
        """The candidate pass names of a feature of :data:`mcdenoise.features.FEATURES`."""
        return getattr(self, feature)

    def with_overrides(
        self,
        color: str | None = None,
        albedo: str | None = None,
        normal: str | None = None,
        layer: str | None = None,
        view: str | None = None,
    ) -> "PassNames":
        """Put user-given names first, so an explicit flag always wins over the preset."""
        return replace(
            self,
            color=(color,) if color is not None else self.color,
            albedo=(albedo,) if albedo is not None else self.albedo,
            normal=(normal,) if normal is not None else self.normal,
            layer=layer if layer is not None else self.layer,
            view=view if view is not None else self.view,
        )


PRESETS: dict[str, PassNames] = {
    "blender": PassNames(),
    # Arnold / Karma / RenderMan style AOVs written by most DCCs: beauty "RGBA", "albedo", "N".
    # Their motion AOVs are 2-D with other conventions than Blender's Vector, so none is mapped.
    "arnold": PassNames(color=("RGBA", ""), albedo=("albedo", "diffuse_albedo"), normal=("N", "normal"), vector=()),
    "vray": PassNames(
        color=("", "RGBA", "RGB color"), albedo=("VRayDiffuseFilter", "diffuseFilter"), normal=("VRayNormals", "normals"),
        vector=(),
    ),
    "redshift": PassNames(color=("", "RGBA", "Beauty"), albedo=("DiffuseFilter", "Albedo"), normal=("N", "BumpNormals"), vector=()),
    # OIDN's own training-set naming: one feature per file, so plain channels everywhere.
    "plain": PassNames(color=("",), albedo=("albedo",), normal=("normal", "N"), vector=()),
}
DEFAULT_PRESET = "blender"


def split_channel_name(full: str) -> tuple[str, str, str]:
    """Split a channel name into (layer, pass, component).

    Blender writes "ViewLayer.Denoising Albedo.R"; the pass name may contain spaces but not
    dots, so the last dot separates the component and the first separates the layer.
    """
    parts = full.split(".")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return parts[0], ".".join(parts[1:-1]), parts[-1]


def join_channel_name(layer: str, pass_name: str, component: str, view: str = "") -> str:
    """The channel name of a pass's component; ``view`` only for a single-part multi-view file,
    where the view is written into the name (explicitly, for the default view too)."""
    return ".".join(p for p in (layer, pass_name, view, component) if p)


def channel_view(full: str, part_view: str = "", multi_view: Sequence[str] = ()) -> tuple[str, str]:
    """The view a channel belongs to ("" for none) and its name without the view, given its
    part's ``view`` attribute and ``multiView`` list ("" and () in a file of one view).

    OpenEXR's rule for a ``multiView`` part: a name of one segment is the default (first)
    view's; otherwise the last-but-one segment names the view if it is one of the list, and a
    channel whose segment is no view belongs to none."""
    if part_view or not multi_view:
        return part_view, full
    segments = full.split(".")
    if len(segments) == 1:
        return multi_view[0], full
    if segments[-2] in multi_view:
        return segments[-2], ".".join(segments[:-2] + segments[-1:])
    return "", full


def file_views(parts: Iterable[tuple[str, Sequence[str]]]) -> list[str]:
    """The views of a file, in file order, from each part's (``view``, ``multiView``); [] for a
    file of one view."""
    found: list[str] = []
    for view, multi_view in parts:
        for name in (*multi_view, view):
            if name and name not in found:
                found.append(name)
    return found
