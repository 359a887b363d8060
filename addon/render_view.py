"""The denoised frame where artists look: a render slot of the Render Result.

Python cannot write pixels into the Render Result (its ``pixels`` are empty and read-only) or
into a render slot; only a render fills a slot. So the denoised frame gets there by a render
that only composites (:func:`mcdenoise.composite.recomposite`), into a slot of its own named
``SLOT_NAME``. The render stays in the slot it was made in, so J / Alt+J in the Image Editor
switch between the noisy and the denoised frame. Blender renders into the active slot, and the
denoised slot is active afterwards, so the next F12 lands there: the two slots then swap roles
(the old render's slot takes the next denoised frame), and only two slots are ever used.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import bpy
from bpy.app.handlers import persistent

from . import runtime
from .worker import AddonError

SLOT_NAME = "Denoised"
RENDER_RESULT = "Render Result"
# The slot the last render was in when its denoised frame took another one; the slot that holds
# a denoised composite now (None once any render has started since).
_state: dict[str, int | None] = {"render_slot": None, "composite": None}


@persistent
def on_render_pre(*_args) -> None:
    """A render starts (on the render thread: only this module's state is touched): whatever
    slot it renders into, no slot is known to hold a composite any more."""
    _state["composite"] = None


def composited(slot: int | None) -> None:
    """The compositor-only render just put the denoised composite into ``slot``."""
    _state["composite"] = slot


def use_denoised_slot() -> int | None:
    """Make a slot other than the last render's the active one (the next render goes there) and
    name it ``SLOT_NAME``; its index, or None before Blender's first render (no Render Result:
    that render makes one, with a single result)."""
    image = bpy.data.images.get(RENDER_RESULT)
    if image is None or image.type != "RENDER_RESULT" or len(image.render_slots) < 2:
        return None
    slots = image.render_slots
    rendered = slots.active_index  # F12 rendered into the active slot
    for index, slot in enumerate(slots):
        if slot.name == SLOT_NAME and index == rendered:  # it now holds a render
            slot.name = f"Slot {index + 1}"
    target = next((i for i, s in enumerate(slots) if s.name == SLOT_NAME and i != rendered), None)
    if target is None:
        previous = _state["render_slot"]
        target = previous if previous is not None and previous != rendered and previous < len(slots) else (rendered + 1) % len(slots)
    for index, slot in enumerate(slots):
        if slot.name == SLOT_NAME and index != target:
            slot.name = f"Slot {index + 1}"
    slots[target].name = SLOT_NAME
    slots.active_index = target
    _state["render_slot"] = rendered
    return target


def check_render_slot(image: bpy.types.Image) -> None:
    """Refuse to denoise the Render Result while its Denoised slot is shown: that slot holds a
    composite without the render's passes."""
    slots = image.render_slots
    if _state["composite"] is not None and slots.active_index == _state["composite"]:
        raise AddonError(f"the Render Result shows its '{SLOT_NAME}' slot, already denoised: switch to the render's "
                         "slot (J in the Image Editor) to denoise it again")


@contextlib.contextmanager
def _plain_exr(scene: bpy.types.Scene):
    """The scene's output format as a plain (single-layer) float EXR for one ``save_render``:
    the composite alone, without Blender's empty view layers of a compositor-only render."""
    im = scene.render.image_settings
    fields = ("media_type", "file_format", "color_depth") if hasattr(im, "media_type") else ("file_format", "color_depth")
    before = {name: getattr(im, name) for name in fields}
    depth = before["color_depth"] if before["color_depth"] in {"16", "32"} else "32"
    try:
        if hasattr(im, "media_type"):
            im.media_type = "IMAGE"
        im.file_format = "OPEN_EXR"
        im.color_depth = depth
        yield
    finally:
        for name in fields:
            if getattr(im, name) != before[name]:
                setattr(im, name, before[name])


def save_render_result(scene: bpy.types.Scene, path: Path) -> None:
    """Write the Render Result's active slot (the composite) to ``path`` as an RGBA EXR."""
    runtime.core()
    from mcdenoise.io.atomic import atomic_output  # noqa: PLC0415 (standard library only)

    image = bpy.data.images.get(RENDER_RESULT)
    if image is None:
        raise AddonError("there is no Render Result to save")
    with _plain_exr(scene), atomic_output(path) as tmp:
        image.save_render(str(tmp), scene=scene)
