"""Which EXR channels hold colour, albedo, normal and alpha.

Renderers name their AOVs differently, so the lookup is driven by a small table of candidate
pass names (a *preset*) that users can override per pass. Blender's names are the default
because the add-on and the training data both come from Blender.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# A channel's full name is "<layer>.<pass>.<component>" (Blender multilayer), "<pass>.<component>"
# (single-part layered files) or just "<component>" (plain RGB/RGBA files, pass name "").
RGB = ("R", "G", "B")
XYZ = ("X", "Y", "Z")


@dataclass(frozen=True)
class PassNames:
    """Candidate pass names, tried in order and case-insensitively. ``layer`` picks a view layer
    when a file holds several (None: the first layer that has a colour pass)."""

    color: tuple[str, ...] = ("Combined", "Image", "")
    albedo: tuple[str, ...] = ("Denoising Albedo", "DenoisingAlbedo", "Albedo")
    normal: tuple[str, ...] = ("Denoising Normal", "DenoisingNormal", "Normal")
    layer: str | None = None

    def with_overrides(
        self,
        color: str | None = None,
        albedo: str | None = None,
        normal: str | None = None,
        layer: str | None = None,
    ) -> "PassNames":
        """Put user-given names first, so an explicit flag always wins over the preset."""
        return replace(
            self,
            color=(color,) if color is not None else self.color,
            albedo=(albedo,) if albedo is not None else self.albedo,
            normal=(normal,) if normal is not None else self.normal,
            layer=layer if layer is not None else self.layer,
        )


PRESETS: dict[str, PassNames] = {
    "blender": PassNames(),
    # Arnold / Karma / RenderMan style AOVs written by most DCCs: beauty "RGBA", "albedo", "N".
    "arnold": PassNames(color=("RGBA", ""), albedo=("albedo", "diffuse_albedo"), normal=("N", "normal")),
    "vray": PassNames(
        color=("", "RGBA", "RGB color"), albedo=("VRayDiffuseFilter", "diffuseFilter"), normal=("VRayNormals", "normals")
    ),
    "redshift": PassNames(color=("", "RGBA", "Beauty"), albedo=("DiffuseFilter", "Albedo"), normal=("N", "BumpNormals")),
    # OIDN's own training-set naming: one feature per file, so plain channels everywhere.
    "plain": PassNames(color=("",), albedo=("albedo",), normal=("normal", "N")),
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


def join_channel_name(layer: str, pass_name: str, component: str) -> str:
    return ".".join(p for p in (layer, pass_name, component) if p)
