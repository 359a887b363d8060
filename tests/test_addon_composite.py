"""The denoised composite and the Render Result's Denoised slot, in real Blender (4.2, 4.5, 5.0).

The compositor inverts the render, so a composite made from the Denoised pass is told apart from
one made from the noisy Combined by its pixels alone: ``1 - Denoised`` against ``1 - Combined``.
Tiny frames (32 px, 2 spp) and an untrained network: these check which pixels reach the
composite and that the artist's node tree is left as it was, not the model's quality.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import OpenEXR
import pytest

from mcdenoise.io.exr import read_frame
from mcdenoise.io.passes import PassNames
from test_addon import blender_python, run_blender

pytestmark = pytest.mark.slow

COMPOSITE = r'''
import os
prefs.backend, prefs.python_path = args["backend"], args["python"]

def tree_state(sc):
    """What the artist's compositor is: its tree, nodes (with mute) and links."""
    tree = sc.compositing_node_group if hasattr(sc, "compositing_node_group") else sc.node_tree
    if tree is None:
        return None
    return [tree.name, sorted((n.name, n.mute) for n in tree.nodes),
            sorted((l.from_node.name, l.from_socket.identifier, l.to_node.name, l.to_socket.identifier) for l in tree.links),
            sc.render.use_compositing, getattr(sc, "use_nodes", None), len(bpy.data.node_groups), len(bpy.data.images)]

def slot_file(index, name):
    """The Render Result's slot ``index`` saved as an EXR (the pixels J shows)."""
    rr = bpy.data.images["Render Result"]
    rr.render_slots.active_index = index
    path = os.path.join(args["dir"], name)
    sys.modules["bl_ext.user_default.mcdenoise.render_view"].save_render_result(bpy.context.scene, __import__("pathlib").Path(path))
    return path

def file_output(tree):
    """A File Output node writing the render: its files must stay as the render wrote them."""
    fo = tree.nodes.new("CompositorNodeOutputFile")
    if hasattr(fo, "directory"):  # 5.0
        fo.directory, fo.file_name = args["dir"] + "/fo", "beauty_"
        fo.file_output_items.new("RGBA", "Image")
    else:
        fo.base_path = args["dir"] + "/fo/beauty_"
    layers = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers")
    tree.links.new(layers.outputs["Image"], fo.inputs[0])

def fo_files():
    folder = args["dir"] + "/fo"
    return sorted((name, os.stat(os.path.join(folder, name)).st_mtime_ns) for name in os.listdir(folder))

sc = tiny_scene(2, 1, args["frame"], size=32)
bpy.ops.mcdenoise.setup_passes()
tree, _ = compositing_on(sc)
file_output(tree)
sc.mcdenoise.auto_denoise = True
bpy.ops.render.render(write_still=True)
out["auto_status"] = status()
out["fo_before"] = fo_files()
rr = bpy.data.images["Render Result"]
out["render_slot"] = rr.render_slots.active_index
before = tree_state(sc)
sc.cycles.samples = 100000  # a path-traced render would take minutes: the re-composite must not trace
out["op"] = sorted(bpy.ops.mcdenoise.recomposite(save=True))
out["op_status"] = status()
out["tree_kept"] = tree_state(sc) == before
out["fo_after"] = fo_files()
os.replace(args["frame"][:-4] + "_composite.exr", args["frame"][:-4] + "_inverted.exr")
out["slots"] = [s.name for s in rr.render_slots]
out["denoised_slot"] = rr.render_slots.active_index
out["denoised_slot_file"] = slot_file(out["denoised_slot"], "slot_denoised.exr")
out["render_slot_file"] = slot_file(out["render_slot"], "slot_render.exr")
# A second F12: Blender renders into the active slot (the Denoised one); the two slots swap.
rr.render_slots.active_index = out["denoised_slot"]
sc.cycles.samples = 2
sc.mcdenoise.auto_denoise = False
bpy.ops.render.render()
bpy.ops.mcdenoise.recomposite()
out["second"] = [rr.render_slots.active_index, [s.name for s in rr.render_slots]]
# Compositing off: the composite is the Denoised pass itself.
sc.render.use_compositing = False
before = tree_state(sc)
out["plain_op"] = sorted(bpy.ops.mcdenoise.recomposite(filepath=args["frame"], save=True))
out["plain_status"] = status()
out["plain_kept"] = tree_state(sc) == before
os.replace(args["frame"][:-4] + "_composite.exr", args["frame"][:-4] + "_plain.exr")
# A Render Layers node of another scene: refused, the tree left as it was.
sc.render.use_compositing = True
other = bpy.data.scenes.new("Other")
rl = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers")
rl.scene = other
before = tree_state(sc)
try:
    out["other_scene"] = sorted(bpy.ops.mcdenoise.recomposite(filepath=args["frame"]))
except RuntimeError as exc:
    out["other_scene"] = str(exc)
out["other_kept"] = tree_state(sc) == before
'''


def exr_channels(path: Path) -> dict[str, np.ndarray]:
    return {name: np.asarray(ch.pixels, np.float32) for part in OpenEXR.File(str(path), separate_channels=True).parts
            for name, ch in part.channels.items()}


def rgb(path: Path, prefix: str = "") -> np.ndarray:
    chans = exr_channels(path)
    names = [f"{prefix}{c}" for c in "RGB"]
    if not all(n in chans for n in names):  # a multilayer composite: its Composite layer
        names = [f"Composite.Combined.{c}" for c in "RGB"]
    return np.stack([chans[n] for n in names], -1)


@pytest.mark.parametrize(("version", "backend"), [("4.2", "EXTERNAL"), ("4.5", "EXTERNAL"), ("5.0", "BLENDER")])
def test_the_denoised_pass_reaches_the_composite_and_a_render_slot(addon_zip, untrained, tmp_path, version, backend):
    frame = tmp_path / "frame.exr"
    out = run_blender(COMPOSITE, tmp_path, untrained, blender=blender_python(version), zip=str(addon_zip),
                      frame=str(frame), backend=backend, python=sys.executable, dir=str(tmp_path))

    assert "Denoised" in out["auto_status"] and not out["auto_status"].startswith("Error"), out["auto_status"]
    assert out["op"] == ["FINISHED"], out["op_status"]
    assert out["tree_kept"] and out["plain_kept"] and out["other_kept"]
    assert out["fo_before"] and out["fo_after"] == out["fo_before"]  # File Output nodes wrote nothing again
    denoised = read_frame(frame, PassNames(color=("Denoised",), layer="ViewLayer")).color
    noisy = read_frame(frame, PassNames(color=("Combined",), layer="ViewLayer")).color
    assert np.abs(denoised - noisy).max() > 1e-2  # the two composites are told apart
    # The saved composite and the Denoised slot: the compositor (invert) on the Denoised pass.
    for path in (tmp_path / "frame_inverted.exr", Path(out["denoised_slot_file"])):
        np.testing.assert_allclose(rgb(path), 1 - denoised, atol=2e-3)
    # The render's own slot keeps the noisy composite: J switches between the two.
    np.testing.assert_allclose(rgb(Path(out["render_slot_file"])), 1 - noisy, atol=2e-3)
    assert out["denoised_slot"] != out["render_slot"] and out["slots"][out["denoised_slot"]] == "Denoised"
    assert out["slots"].count("Denoised") == 1
    # The next F12 went into the Denoised slot; its denoised frame took the first render's slot.
    assert out["second"][0] == out["render_slot"] and out["second"][1].count("Denoised") == 1
    assert out["second"][1][out["render_slot"]] == "Denoised"
    # Compositing off: the denoised frame itself.
    assert out["plain_op"] == ["FINISHED"], out["plain_status"]
    np.testing.assert_allclose(rgb(tmp_path / "frame_plain.exr"), denoised, atol=2e-3)
    assert "Other" in out["other_scene"] and "mute that node" in out["other_scene"], out["other_scene"]


ANIMATION = r'''
import os
prefs.backend, prefs.python_path = args["backend"], args["python"]
sc = tiny_scene(2, 1, args["dir"] + "/anim_", size=32)
bpy.ops.mcdenoise.setup_passes()
tree, invert = compositing_on(sc)
# An animated compositor: inverted at frame 1, not at frame 2 (each frame composited at its time).
factor = next(s for s in invert.inputs if s.name in ("Fac", "Factor"))
factor.default_value = 1.0
factor.keyframe_insert("default_value", frame=1)
factor.default_value = 0.0
factor.keyframe_insert("default_value", frame=2)
sc.mcdenoise.auto_denoise = True
sc.frame_start, sc.frame_end = 1, 2
bpy.ops.render.render(animation=True)
sc.mcdenoise.auto_denoise = False  # frame 3 is rendered but never denoised; frame 4 never rendered
sc.frame_start = sc.frame_end = 3
bpy.ops.render.render(animation=True)
sc.frame_start, sc.frame_end = 1, 4
sc.frame_set(2)
out["op"] = sorted(bpy.ops.mcdenoise.recomposite(animation=True))
out["status"] = status()
out["frame_after"] = sc.frame_current
# F12 without saving, then the Denoise button on the Render Result: its slot shows the result.
sc.frame_set(1)
bpy.ops.render.render()
rr = bpy.data.images["Render Result"]
render_slot = rr.render_slots.active_index
out["button"] = sorted(bpy.ops.mcdenoise.denoise_image(image_name="Render Result"))
out["button_file"] = keep(status().split(" in ")[-1].rstrip(")"), "button.exr")
out["button_slot"] = [rr.render_slots.active_index != render_slot, rr.render_slots[rr.render_slots.active_index].name]
sys.modules["bl_ext.user_default.mcdenoise.render_view"].save_render_result(sc, __import__("pathlib").Path(args["dir"] + "/button_slot.exr"))
try:  # the Denoised slot shown: denoising it again is refused, not done on a composite
    out["again"] = sorted(bpy.ops.mcdenoise.denoise_image(image_name="Render Result"))
except RuntimeError as exc:
    out["again"] = str(exc)
bpy.ops.render.render()  # F12 renders into the active slot: the render there is denoised again
out["after_f12"] = sorted(bpy.ops.mcdenoise.denoise_image(image_name="Render Result"))
'''


@pytest.mark.parametrize(("version", "backend"), [("4.2", "EXTERNAL"), ("5.0", "BLENDER")])
def test_an_animation_is_composited_frame_by_frame_and_the_button_fills_the_slot(addon_zip, untrained, tmp_path, version, backend):
    out = run_blender(ANIMATION, tmp_path, untrained, blender=blender_python(version), zip=str(addon_zip),
                      backend=backend, python=sys.executable, dir=str(tmp_path))

    assert out["op"] == ["FINISHED"], out["status"]
    assert "of 2 frame(s)" in out["status"] and "frames 3, 4" in out["status"], out["status"]
    assert out["frame_after"] == 2  # the scene's frame put back
    names = PassNames(color=("Denoised",), layer="ViewLayer")
    first, second = (read_frame(tmp_path / f"anim_000{i}.exr", names).color for i in (1, 2))
    np.testing.assert_allclose(rgb(tmp_path / "anim_0001_composite.exr"), 1 - first, atol=2e-3)
    np.testing.assert_allclose(rgb(tmp_path / "anim_0002_composite.exr"), second, atol=2e-3)
    assert not (tmp_path / "anim_0003_composite.exr").exists() and not (tmp_path / "anim_0004_composite.exr").exists()
    # The button on the Render Result: the denoised composite (frame 1: inverted) in its own slot.
    assert out["button"] == ["FINISHED"] and out["button_slot"] == [True, "Denoised"]
    button = read_frame(Path(out["button_file"]), names).color
    np.testing.assert_allclose(rgb(tmp_path / "button_slot.exr"), 1 - button, atol=2e-3)
    assert "shows its 'Denoised' slot" in out["again"] and "J in the Image Editor" in out["again"], out["again"]
    assert out["after_f12"] == ["FINISHED"]
