"""Stereo renders with both views in one EXR (Output > Views > Views Format: Multi-View): every
view is denoised from its own passes into its own Denoised pass, in the core, the CLI and the
add-on. Blender writes such a file in two ways, both rendered here by real bpy at 32 px, 2 spp:
5.0 as parts with a ``view`` attribute ("ViewLayer.Combined-left", channels named as in a file of
one view), 4.2-4.5 as one part with a ``multiView`` list and the view inside each channel's name
("ViewLayer.Combined.left.R").
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import OpenEXR
import pytest

from mcdenoise.errors import InputFileError, MissingPassError
from mcdenoise.inference.frames import denoise_file
from mcdenoise.io import header as exr_header
from mcdenoise.io.exr import open_exr, read_frame, views
from mcdenoise.io.passes import PassNames
from mcdenoise.io.write import write_with_pass, write_with_passes
from mcdenoise.models.loader import load_model
from test_addon import TINY_SCENE, blender_python, channels

pytestmark = pytest.mark.slow

# A stereo still in one multilayer EXR: a cube on a plane, the cameras 0.5 apart so the views differ.
RENDER = TINY_SCENE + r'''
import json, sys
args = json.loads(sys.argv[1])
sc = tiny_scene(2, 0, args["out"], size=32)
sc.camera.data.stereo.interocular_distance = 0.5
sc.cycles.use_denoising = False
im = sc.render.image_settings
if hasattr(im, "media_type"):
    im.media_type = "MULTI_LAYER_IMAGE"
im.file_format = "OPEN_EXR_MULTILAYER"
im.color_depth = "16"
sc.render.use_multiview = True
sc.render.views_format = "STEREO_3D"
im.views_format = "MULTIVIEW"
sc.render.filepath = args["out"]
bpy.ops.render.render(write_still=True)
'''

# What Blender makes of a file: its views, and the passes the compositor's Image node offers.
LOAD = r'''
import json, sys, bpy
args = json.loads(sys.argv[1])
img = bpy.data.images.load(args["path"])
sc = bpy.context.scene
if hasattr(sc, "compositing_node_group"):
    tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
else:
    sc.use_nodes = True
    tree = sc.node_tree
node = tree.nodes.new("CompositorNodeImage")
node.image = img
print("RESULT " + json.dumps({"type": img.type, "stereo": img.is_stereo_3d, "layer": node.layer,
                              "outputs": [o.name for o in node.outputs if o.enabled]}))
'''


def run_bpy(version: str, script: str, tmp_path: Path, **args) -> dict:
    """``script`` in a fresh process of that Blender's bpy, its user folder in ``tmp_path``."""
    path = tmp_path / "stereo_script.py"
    path.write_text(script, encoding="utf-8")
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender-user"))
    proc = subprocess.run([str(blender_python(version)), str(path), json.dumps(args)], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"Blender script failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT "):]) if lines else {}


@pytest.fixture(scope="module", params=["5.0", "4.2"])
def stereo(request, tmp_path_factory) -> tuple[str, Path]:
    """(Blender version, the stereo one-file EXR it rendered)."""
    folder = tmp_path_factory.mktemp(f"stereo{request.param}")
    out = folder / "stereo.exr"
    run_bpy(request.param, RENDER, folder, out=str(out))
    return request.param, out


def raw_view(path: Path, view: str, pass_name: str, comps: str = "RGB") -> np.ndarray:
    """A pass of one view read straight from OpenEXR, by each layout's own rule."""
    for part in OpenEXR.File(str(path), separate_channels=True).parts:
        if part.header.get("view") == view:
            names = [f"ViewLayer.{pass_name}.{c}" for c in comps]
        elif part.header.get("multiView"):
            names = [f"ViewLayer.{pass_name}.{view}.{c}" for c in comps]
        else:
            continue
        if all(n in part.channels for n in names):
            return np.stack([np.asarray(part.channels[n].pixels, np.float32) for n in names], axis=-1)
    raise KeyError((view, pass_name))


def by_view(path: Path) -> dict[tuple[str, str], np.ndarray]:
    """Every channel's pixels keyed by (its part's view, its name): names repeat across views."""
    return {(str(part.header.get("view", "")), name): np.asarray(ch.pixels)
            for part in OpenEXR.File(str(path), separate_channels=True).parts for name, ch in part.channels.items()}


def test_each_view_is_read_from_its_own_passes(stereo):
    version, path = stereo
    header = open_exr(path, header_only=True)
    layout = {part.name(): part.header.get("view") for part in header.parts}
    if version == "5.0":  # the layout this test covers, as Blender wrote it
        assert layout["ViewLayer.Combined-right"] == "right" and len(header.parts) == 8
    else:
        assert len(header.parts) == 1 and list(header.parts[0].header["multiView"]) == ["left", "right"]
    assert views(header) == ["left", "right"]
    frames = {}
    for view in ("left", "right"):
        for low_memory in (False, True):
            frame = read_frame(path, PassNames(view=view), low_memory=low_memory)
            assert frame.view == view and frame.layer == "ViewLayer"
            np.testing.assert_array_equal(frame.color, raw_view(path, view, "Combined"))
            np.testing.assert_array_equal(frame.albedo, raw_view(path, view, "Denoising Albedo"))
            np.testing.assert_array_equal(frame.normal, raw_view(path, view, "Denoising Normal", "XYZ"))
        frames[view] = frame
    assert np.abs(frames["left"].color - frames["right"].color).max() > 1e-2  # two cameras, two images
    np.testing.assert_array_equal(read_frame(path).color, frames["left"].color)  # the default view
    with pytest.raises(MissingPassError, match="no view 'middle'.*'left', 'right'"):
        read_frame(path, PassNames(view="middle"))


@pytest.mark.parametrize("low_memory", [False, True])
def test_every_view_is_prepared_from_one_decode_of_the_file(stereo, untrained, monkeypatch, low_memory):
    """Denoising a stereo file (the CLI, the batch runner, the add-on) decodes it once for both
    views, not once a view, and each view's frame is the one read alone for that view."""
    from mcdenoise.inference.frames import prepare_views

    _, path = stereo
    decoded = []
    real = OpenEXR.File

    def counting(*args, **kwargs):
        if not kwargs.get("header_only"):
            decoded.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(OpenEXR, "File", counting)
    alone = {view: read_frame(path, PassNames(view=view), low_memory=low_memory) for view in ("left", "right")}
    one_view = len(decoded) // 2  # the file, or (low-memory) its needed parts and each unread part alone
    assert one_view == 1 or low_memory
    decoded.clear()
    prepared = prepare_views(load_model(untrained, device="cpu"), path, low_memory=low_memory)
    assert len(decoded) == one_view, decoded
    assert [p.frame.view for p in prepared] == ["left", "right"]
    for p in prepared:
        want = alone[p.frame.view]
        assert (p.frame.color_part, p.frame.passes, p.frame.color_dtype) == (want.color_part, want.passes, want.color_dtype)
        for name in ("color", "albedo", "normal", "alpha"):
            np.testing.assert_array_equal(getattr(p.frame, name), getattr(want, name), err_msg=name)
    assert prepared[0].exposure != prepared[1].exposure  # each view's own exposure


def test_both_views_are_written_and_every_other_channel_kept(stereo, tmp_path):
    """Each view's Denoised pass goes where Blender keeps that view's passes, the rest is kept
    pixel for pixel (5.0's parts byte for byte), denoising again replaces the passes, and
    Blender loads the result as a stereo image with a Denoised pass."""
    version, path = stereo
    left, right = (read_frame(path, PassNames(view=v), low_memory=True) for v in ("left", "right"))
    out = tmp_path / "out.exr"
    write_with_passes([(left, raw_view(path, "left", "Combined") * 2), (right, raw_view(path, "right", "Combined") * 3)], out)

    kept, after = by_view(path), by_view(out)
    for key, plane in kept.items():
        np.testing.assert_array_equal(after[key], plane, err_msg=str(key))
    header = open_exr(out, header_only=True)
    if version == "5.0":
        new = {part.name(): part.header["view"] for part in header.parts[8:]}
        assert new == {"ViewLayer.Denoised-left": "left", "ViewLayer.Denoised-right": "right"}
        assert set(after) - set(kept) == {(v, f"ViewLayer.Denoised.{c}") for v in ("left", "right") for c in "RGB"}
        # Spliced: every chunk of the original parts is in the output as it was compressed (but
        # for the part number leading it).
        with open(path, "rb") as fh:
            layout = exr_header.read_layout(fh)
        original, written = path.read_bytes(), out.read_bytes()
        for part in layout.parts:
            for offset in part.offsets:
                (size,) = struct.unpack_from("<i", original, offset + 8)
                assert original[offset + 4 : offset + 12 + size] in written, part.name
    else:
        assert len(header.parts) == 1 and list(header.parts[0].header["multiView"]) == ["left", "right"]
        assert channels(out) - channels(path) == {f"ViewLayer.Denoised.{v}.{c}" for v in ("left", "right") for c in "RGB"}
    for view, gain in (("left", 2), ("right", 3)):
        got = read_frame(out, PassNames(color=("Denoised",), view=view)).color
        np.testing.assert_allclose(got, raw_view(path, view, "Combined") * gain, rtol=1e-3)

    again = [read_frame(out, PassNames(view=v)) for v in ("left", "right")]
    write_with_passes([(f, f.color) for f in again], out)
    assert channels(out) == channels(tmp_path / "out.exr") and len(open_exr(out, header_only=True).parts) == len(header.parts)
    np.testing.assert_array_equal(read_frame(out, PassNames(color=("Denoised",), view="right")).color,
                                  raw_view(path, "right", "Combined").astype(np.float16).astype(np.float32))

    # One view alone: the other view's Denoised pass stays as it was.
    only = read_frame(out, PassNames(view="left"))
    write_with_pass(only, out, only.color * 0)
    assert read_frame(out, PassNames(color=("Denoised",), view="left")).color.max() == 0
    np.testing.assert_array_equal(read_frame(out, PassNames(color=("Denoised",), view="right")).color,
                                  again[1].color)

    loaded = run_bpy(version, LOAD, tmp_path, path=str(out))
    assert loaded["type"] == "MULTILAYER" and loaded["stereo"], loaded
    assert "Denoised" in loaded["outputs"] and "Combined" in loaded["outputs"], loaded


def test_cli_denoises_every_view_and_names_the_view_of_a_missing_pass(stereo, cli, untrained, tmp_path):
    version, path = stereo
    out = tmp_path / "cli.exr"
    code, _out, err = cli("denoise", path, "-o", out, "--weights", untrained, "--device", "cpu", "-q")
    assert code == 0, err
    model = load_model(untrained, device="cpu")
    results = {}
    for view in ("left", "right"):
        alone = denoise_file(model, path, tmp_path / f"{view}.exr", PassNames(view=view)).denoised
        results[view] = read_frame(out, PassNames(color=("Denoised",), view=view)).color
        np.testing.assert_allclose(results[view], alone, rtol=1e-3, atol=1e-4)
    assert np.abs(results["left"] - results["right"]).max() > 1e-3

    code, _out, err = cli("denoise", path, "-o", tmp_path / "right.exr", "--view", "right", "--weights", untrained, "-q")
    assert code == 0, err
    written = channels(tmp_path / "right.exr") - channels(path)
    assert len(written) == 3 and all("Denoised" in name for name in written)
    with pytest.raises(MissingPassError):
        read_frame(tmp_path / "right.exr", PassNames(color=("Denoised",), view="left"))

    # A sequence of stereo frames: each frame's views, frame by frame (a history follows one view).
    for n in (1, 2):
        (tmp_path / "seq").mkdir(exist_ok=True)
        (tmp_path / "seq" / f"shot_{n:04d}.exr").write_bytes(path.read_bytes())
    code, out, err = cli("denoise", tmp_path / "seq" / "shot_####.exr", "--out", tmp_path / "seq_out", "--weights", untrained)
    assert code == 0 and "holds several views (stereo), denoised frame by frame" in out, (out, err)
    for n in (1, 2):
        np.testing.assert_array_equal(read_frame(tmp_path / "seq_out" / f"shot_{n:04d}.exr", PassNames(color=("Denoised",), view="right")).color,
                                      results["right"])

    code, _out, err = cli("denoise", path, "-o", tmp_path / "x.exr", "--view", "middle", "--weights", untrained, "-q")
    assert code == 2 and "no view 'middle'" in err and "'left', 'right'" in err

    if version == "5.0":  # the right view's albedo gone: the error names the view
        from mcdenoise.io import splice

        broken = tmp_path / "no_right_albedo.exr"
        splice.splice(path, {"ViewLayer.Denoising Albedo-right"}, None, broken)
        code, _out, err = cli("denoise", broken, "-o", tmp_path / "y.exr", "--require-aux", "--weights", untrained, "-q")
        assert code == 2 and "no albedo pass of view 'right'" in err, err
        assert not (tmp_path / "y.exr").exists()


def test_a_file_per_view_is_joined_into_one_stereo_file(stereo, tmp_path):
    """What the add-on does with the file per view Blender's ``save_render`` writes for a
    stereo Render Result: one file whose views read as the files did."""
    from mcdenoise.io.write import join_views, write_exr

    version, path = stereo
    files = {}
    for view in ("left", "right"):
        frame = read_frame(path, PassNames(view=view))
        files[view] = tmp_path / f"{view}.exr"
        write_exr(files[view], {"ViewLayer.Combined": frame.color, "ViewLayer.Denoising Albedo": frame.albedo,
                                "ViewLayer.Denoising Normal": frame.normal}, multipart=version == "5.0")
    joined = tmp_path / "joined.exr"
    join_views(files, joined)
    assert views(open_exr(joined, header_only=True)) == ["left", "right"]
    for view in ("left", "right"):
        np.testing.assert_array_equal(read_frame(joined, PassNames(view=view)).color, read_frame(files[view]).color)
    with pytest.raises(InputFileError, match="already holds several views"):
        join_views({"left": path}, tmp_path / "again.exr")


# Auto-denoise of a stereo animation frame written as one file, through the add-on in real
# Blender (test_addon_frames.py's helpers: each frame rendered without the add-on first).
STEREO_ONE_FILE = r'''
sc = tiny_scene(1, 1, args["anim"], size=32)
bpy.ops.mcdenoise.setup_passes()
sc.camera.data.stereo.interocular_distance = 0.5
sc.render.use_multiview = True
sc.render.views_format = "STEREO_3D"
sc.render.image_settings.views_format = "MULTIVIEW"
sc.frame_start = sc.frame_end = 2
render_twice(sc, args["anim"], animation=True)
out["status"] = status()
out["frame_path"] = sc.render.frame_path(frame=2)
# The Denoise button on the stereo Render Result (which save_render writes as a file per view
# whatever the Views Format): joined into one file, each view denoised.
sc.render.image_settings.views_format = "INDIVIDUAL"
try:
    out["button"] = sorted(bpy.ops.mcdenoise.denoise_image(image_name="Render Result"))
    out["button_file"] = keep(status().split(" in ")[-1].rstrip(")"), "button.exr")
except RuntimeError:  # reported, and raised by bpy.ops from a script
    out["button"] = ["CANCELLED"]
out["button_status"] = status()
out["views_format"] = sc.render.image_settings.views_format
# F12 without saving, auto-denoise on: the same joined file, denoised into an image.
sc.mcdenoise.auto_denoise = True
bpy.ops.render.render()
out["f12_status"] = status()
'''


@pytest.mark.parametrize("version,backend", [("5.0", "BLENDER"), ("4.2", "EXTERNAL")])
def test_auto_denoise_gives_each_view_of_a_one_file_stereo_frame_its_pass(addon_zip, untrained, tmp_path, version,
                                                                         backend):
    from test_addon_frames import as_written, blender_run, core_denoised

    out = blender_run(STEREO_ONE_FILE, tmp_path, untrained, version, backend, addon_zip, anim=str(tmp_path / "anim_"))
    path = tmp_path / "anim_0002.exr"
    assert out["frame_path"] == str(path)
    assert not out["status"].startswith("Error"), out["status"]
    original = as_written(path)
    kept, after = by_view(original), by_view(path)
    for key, plane in kept.items():
        np.testing.assert_array_equal(after[key], plane, err_msg=str(key))
    results = {}
    for view in ("left", "right"):
        results[view] = read_frame(path, PassNames(color=("Denoised",), view=view)).color
        expected = core_denoised(untrained, original, PassNames(view=view), tmp_path)
        np.testing.assert_allclose(results[view], expected, rtol=1e-3, atol=1e-4)
    assert np.abs(results["left"] - results["right"]).max() > 1e-3  # the right view is its own

    assert out["views_format"] == "INDIVIDUAL"
    if backend == "EXTERNAL":  # the joining needs OpenEXR in Blender (the zip users get bundles it; this bpy has none)
        assert out["button"] == ["CANCELLED"] and "needs OpenEXR in Blender" in out["button_status"], out["button_status"]
        assert "needs OpenEXR in Blender" in out["f12_status"], out["f12_status"]
        return
    assert not out["f12_status"].startswith("Error") and "Render Result (denoised)" in out["f12_status"], out["f12_status"]
    assert out["button"] == ["FINISHED"], out["button_status"]
    button = Path(out["button_file"])
    assert views(open_exr(button, header_only=True)) == ["left", "right"]
    for view in ("left", "right"):
        got = read_frame(button, PassNames(color=("Denoised",), view=view)).color
        np.testing.assert_allclose(got, core_denoised(untrained, button, PassNames(view=view), tmp_path), rtol=1e-3, atol=1e-4)
