"""The Blender extension, end to end in real Blender (bpy 5.0.1): build the zip, install and enable
it in a throw-away user folder, render, press the button, and check the EXRs it wrote. The oldest
Blender the manifest claims and the newest LTS before 5.0 run the same add-on from their own bpy
(``.venv-bpy42``, ``.venv-bpy45``, which ``make test`` builds from ``tests/requirements-bpy*.txt``).

Each Blender session runs in its own subprocess: bpy state is process-global (installed
extensions, handlers, scenes), so a subprocess per test is the only clean isolation, and a crash
there fails one test instead of the run. The scripts print one ``RESULT {json}`` line.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcdenoise.io.exr import open_exr, read_frame
from mcdenoise.io.write import write_exr
from mcdenoise.models.loader import DEFAULT_WEIGHTS
from mcdenoise.io.passes import PassNames
from mcdenoise.preview import tonemap

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]

# A cube on a plane lit by a point light; the stereo tests render it without the add-on.
TINY_SCENE = r'''
import bpy

def tiny_scene(samples, seed, path, store_passes=True, size=64):
    """A cube on a plane lit by a point light: size x size, plain Cycles path tracing. Cycles' own
    denoiser stays as it is: on in factory settings, off after Set up passes."""
    import bmesh
    from mathutils import Vector
    sc = bpy.context.scene
    if "cube" not in bpy.data.objects:
        for ob in list(bpy.data.objects):
            bpy.data.objects.remove(ob)
        def mesh(name, build, loc):
            bm = bmesh.new(); build(bm); me = bpy.data.meshes.new(name); bm.to_mesh(me); bm.free()
            ob = bpy.data.objects.new(name, me); ob.location = loc; sc.collection.objects.link(ob)
        mesh("cube", lambda bm: bmesh.ops.create_cube(bm, size=1.0), (0, 0, 0.5))
        mesh("plane", lambda bm: bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=4.0), (0, 0, 0))
        cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam")); sc.collection.objects.link(cam)
        cam.location = (3.5, -3.5, 3.0)
        cam.rotation_euler = (Vector((0, 0, 0.4)) - cam.location).to_track_quat("-Z", "Y").to_euler()
        sc.camera = cam
        light = bpy.data.objects.new("light", bpy.data.lights.new("light", "POINT"))
        light.data.energy = 500; light.location = (1, -2, 3); sc.collection.objects.link(light)
    sc.render.engine = "CYCLES"
    sc.cycles.device = "CPU"
    sc.cycles.samples, sc.cycles.seed = samples, seed
    sc.cycles.use_adaptive_sampling = False
    sc.render.resolution_x = sc.render.resolution_y = size
    sc.render.resolution_percentage = 100
    sc.render.filepath = path
    for vl in sc.view_layers:
        vl.cycles.denoising_store_passes = store_passes
    return sc
'''

# Installs the built zip the way Blender's "Install from Disk" does, then enables it.
PRELUDE = r'''
import json, sys, bpy
args = json.loads(sys.argv[1])
for name in args.get("hide", []):  # make a module unimportable, as in a bare Blender
    sys.modules[name] = None
result = bpy.ops.extensions.package_install_files(filepath=args["zip"], repo="user_default", enable_on_install=True)
assert result == {"FINISHED"}, result
assert "bl_ext.user_default.mcdenoise" in bpy.context.preferences.addons, "extension not enabled"
prefs = bpy.context.preferences.addons["bl_ext.user_default.mcdenoise"].preferences
prefs.weights_path = args["weights"]
prefs.device = "CPU"
out = {}

''' + TINY_SCENE + r'''
def status():
    """The add-on's last result, as its panel shows it."""
    return sys.modules["bl_ext.user_default.mcdenoise.status"].last()

def keep(path, name):
    """Copy a file out of Blender's session temp folder, which Blender removes when it exits."""
    import shutil
    kept = args["keep_dir"] + "/" + name
    shutil.copy(path, kept)
    return kept

def compositing_on(sc):
    """Turn compositing on with an Invert node between Render Layers and the output (4.x: the
    scene's node tree and its Composite node; 5.0: a node group); returns the tree and the node.
    Blender then writes the composite as Composite.Combined ahead of the view layers."""
    sc.render.use_compositing = True
    if hasattr(sc, "compositing_node_group"):
        tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        out_node = tree.nodes.new("NodeGroupOutput")
        sc.compositing_node_group = tree
    else:
        sc.use_nodes = True
        tree = sc.node_tree
        out_node = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite")
    layers = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"), None) or tree.nodes.new("CompositorNodeRLayers")
    invert = tree.nodes.new("CompositorNodeInvert")
    tree.links.new(layers.outputs["Image"], invert.inputs["Color"])
    tree.links.new(invert.outputs[0], out_node.inputs[0])
    return tree, invert

def finish():
    print("RESULT " + json.dumps(out))
'''


def run_blender(script: str, tmp_path: Path, weights: Path | str = "", blender: Path = Path(sys.executable), **args) -> dict:
    """Run PRELUDE + script in a fresh process of the Python whose bpy is ``blender`` (.venv's:
    5.0), with Blender's user folder inside ``tmp_path``; ``weights`` empty means the model
    shipped in the zip."""
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender-user"))
    path = tmp_path / "blender_script.py"
    path.write_text(PRELUDE + script + "\nfinish()\n", encoding="utf-8")
    args.setdefault("keep_dir", str(tmp_path))
    proc = subprocess.run([str(blender), str(path), json.dumps({"weights": str(weights), **args})], env=env,
                          capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"Blender script failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def build_zip(out_dir: Path) -> Path:
    """The extension zip as ``build_addon.py`` makes it (without the OpenEXR wheels)."""
    done = subprocess.run([sys.executable, str(REPO / "build_addon.py"), "--no-wheels", "--out-dir", str(out_dir)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (zip_path,) = out_dir.glob("mcdenoise-*.zip")
    return zip_path


def write_untrained(path: Path) -> Path:
    """A small untrained network: the plumbing tests must not wait for the shipped model."""
    from mcdenoise.models.loader import save_weights
    from mcdenoise.models import build_model

    save_weights(path, build_model("unet", widths=[8, 8, 8, 8, 8]), "unet", {"widths": [8, 8, 8, 8, 8]}, "color+albedo+normal")
    return path


def channels(path: Path) -> set[str]:
    return {ch.name for part in open_exr(path, header_only=True).parts for ch in part.header["channels"]}


def tonemapped_mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((tonemap(a) - tonemap(b)) ** 2))


def test_zip_is_a_blender_extension_with_the_core_inside(addon_zip):
    """The zip holds the add-on and the part of the core it runs (every test here that denoises
    inside Blender runs that copy, and "Fine-tune on this shot" runs its finetune, training and
    dataset code); benchmark and CLI code and the DnCNN weights stay out."""
    import zipfile

    from mcdenoise import __version__
    from mcdenoise.choices import TIERS

    names = set(zipfile.ZipFile(addon_zip).namelist())
    vendored = {n.removeprefix("vendor/mcdenoise/") for n in names if n.startswith("vendor/mcdenoise/")}
    assert {"blender_manifest.toml", "__init__.py", "scene_io.py", "worker.py"} <= names
    assert {"__init__.py", "choices.py", "errors.py", "features.py", "hdr.py", "inference/frames.py", "inference/runtime.py",
            "io/exr.py", "io/write.py", "io/splice.py", "models/tiers.py", "models/unet.py"} <= vendored
    assert {f"weights/{tier.weights}" for tier in TIERS.values()} <= vendored
    top = {n.split("/")[0] for n in vendored}
    assert {"finetune/run.py", "finetune/shot.py", "training/loop.py", "dataset/render.py"} <= vendored
    assert not top & {"bench", "cli", "__main__.py"}, sorted(top)
    assert "weights/dncnn.pt" not in vendored and not any(n.endswith((".pyc", ".tmp")) for n in names)
    manifest = zipfile.ZipFile(addon_zip).read("blender_manifest.toml").decode()
    assert 'id = "mcdenoise"' in manifest
    assert addon_zip.name == f"mcdenoise-{__version__}.zip" and f'version = "{__version__}"' in manifest


AUTO_DENOISE = r'''
# Same seed twice: Cycles is deterministic within a process, so the first file shows exactly
# which passes Blender wrote before the add-on touched anything.
size = args.get("size", 128)
sc = tiny_scene(4, 1, args["plain"], size=size)
bpy.ops.render.render(write_still=True)
sc.mcdenoise.auto_denoise = True
sc = tiny_scene(4, 1, args["noisy"], size=size)
bpy.ops.render.render(write_still=True)
out["status"] = status()
sc.mcdenoise.auto_denoise = False
sc = tiny_scene(256, 7, args["ref"], size=size)
bpy.ops.render.render(write_still=True)
'''


@pytest.fixture(scope="module")
def auto_denoised(addon_zip, tmp_path_factory) -> dict[str, Path]:
    """One render session shared by the checks below: plain 4 spp, the same 4 spp with
    auto-denoise on, and a 256 spp reference with another seed."""
    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip(f"{DEFAULT_WEIGHTS} is not trained yet; the quality check needs the shipped model")
    tmp_path = tmp_path_factory.mktemp("auto")
    paths = {n: tmp_path / f"{n}.exr" for n in ("plain", "noisy", "ref")}
    # Set up as an artist would, through the "Set up passes" operator.
    script = "bpy.ops.mcdenoise.setup_passes()\n" + AUTO_DENOISE
    out = run_blender(script, tmp_path, zip=str(addon_zip), **{k: str(v) for k, v in paths.items()})
    return {"status": out["status"], **paths}


def errors_vs_reference(files: dict) -> tuple[float, float]:
    """Tonemapped MSE of the noisy Combined and of the Denoised pass against the reference."""
    noisy = read_frame(files["noisy"]).color
    denoised = read_frame(files["noisy"], PassNames(color=("Denoised",))).color
    reference = read_frame(files["ref"]).color
    return tonemapped_mse(noisy, reference), tonemapped_mse(denoised, reference)


def test_auto_denoise_adds_the_pass_and_keeps_every_other(auto_denoised):
    status = auto_denoised["status"]
    assert "Denoised" in status and not status.startswith("Error"), status
    original = channels(auto_denoised["plain"])
    assert any("Denoising Albedo" in c for c in original) and any("Denoising Normal" in c for c in original)
    assert channels(auto_denoised["noisy"]) == original | {f"ViewLayer.Denoised.{c}" for c in "RGB"}
    assert not any(".Denoised." in c for c in channels(auto_denoised["ref"]))
    before, after = read_frame(auto_denoised["plain"]), read_frame(auto_denoised["noisy"])
    np.testing.assert_array_equal(before.color, after.color)  # Combined kept bit for bit
    assert after.samples == 4  # Blender's stamp, which tells a model reading ``samples`` the noise level


def test_auto_denoised_pass_beats_the_noisy_render(auto_denoised):
    noisy_err, denoised_err = errors_vs_reference(auto_denoised)
    print(f"tonemapped MSE vs 256 spp: noisy {noisy_err:.6f}, denoised {denoised_err:.6f}")
    assert denoised_err < noisy_err


BUTTON = r'''
img = bpy.data.images.load(args["exr"])
out["result"] = sorted(bpy.ops.mcdenoise.denoise_image(image_name=img.name))
out["status"] = status()
shown = bpy.data.images.get(img.name + " (denoised)")
if shown is not None:
    import numpy as np
    w, h = shown.size
    px = np.empty(w * h * 4, np.float32); shown.pixels.foreach_get(px)
    np.save(args["pixels"], px.reshape(h, w, 4)[::-1, :, :3])
out["core"] = getattr(sys.modules.get("mcdenoise"), "__file__", None)
out["torch_in_blender"] = "torch" in sys.modules
'''


@pytest.mark.parametrize("backend", ["BLENDER", "EXTERNAL"])
def test_denoise_button_on_a_loaded_exr(addon_zip, untrained, tmp_path, repo_root, backend):
    exr = tmp_path / "suzanne_4spp.exr"
    shutil.copy(repo_root / "examples" / "suzanne_4spp.exr", exr)
    digest = hashlib.sha256(exr.read_bytes()).hexdigest()
    script = 'prefs.backend = args["backend"]\nprefs.python_path = args["python"]\n' + BUTTON
    out = run_blender(script, tmp_path, untrained, zip=str(addon_zip), exr=str(exr), backend=backend, python=sys.executable,
                      pixels=str(tmp_path / "pixels.npy"))

    assert out["result"] == ["FINISHED"], out["status"]
    assert hashlib.sha256(exr.read_bytes()).hexdigest() == digest  # the artist's file is untouched
    written = tmp_path / "suzanne_4spp_denoised.exr"
    assert channels(written) == channels(exr) | {f"ViewLayer.Denoised.{c}" for c in "RGB"}
    denoised = read_frame(written, PassNames(color=("Denoised",))).color
    assert denoised.shape == (240, 320, 3) and np.isfinite(denoised).all()
    assert not np.allclose(denoised, read_frame(exr).color, atol=1e-3)
    assert out["torch_in_blender"] == (backend == "BLENDER")  # the worker keeps torch out of Blender
    if backend == "BLENDER":  # the vendored core ran, and the new image holds the denoised radiance
        assert "/vendor/mcdenoise/" in out["core"].replace(os.sep, "/"), out["core"]
        shown = np.load(tmp_path / "pixels.npy")
        np.testing.assert_allclose(shown, denoised, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("backend", ["BLENDER", "EXTERNAL"])
def test_quality_setting_picks_the_shipped_model(addon_zip, tmp_path, repo_root, backend):
    """No weights file in the preferences: the scene's Quality decides, in Blender and in the
    worker alike, and gives exactly what ``mcdenoise denoise --quality high`` gives."""
    from mcdenoise.inference.frames import denoise_file
    from mcdenoise.models.tiers import load_quality

    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip(f"{DEFAULT_WEIGHTS} is missing")
    exr = tmp_path / "suzanne_4spp.exr"
    shutil.copy(repo_root / "examples" / "suzanne_4spp.exr", exr)
    script = 'prefs.backend = args["backend"]\nprefs.python_path = args["python"]\nbpy.context.scene.mcdenoise.quality = "high"\n' + BUTTON
    out = run_blender(script, tmp_path, "", zip=str(addon_zip), exr=str(exr), backend=backend, python=sys.executable,
                      pixels=str(tmp_path / "pixels.npy"))
    assert out["result"] == ["FINISHED"], out["status"]
    got = read_frame(tmp_path / "suzanne_4spp_denoised.exr", PassNames(color=("Denoised",))).color
    expected = denoise_file(load_quality("high"), exr, tmp_path / "expected.exr").denoised
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
    balanced = denoise_file(load_quality("balanced"), exr, tmp_path / "balanced.exr").denoised
    assert np.abs(got - balanced).max() > 1e-3  # the setting really changed the model


def blender_versions() -> dict[str, tuple[Path, str]]:
    """Blender version -> (the Python whose bpy it is, the bpy release it must be): .venv's 5.0
    and one venv per ``tests/requirements-bpy*.txt``."""
    versions = {".".join(importlib.metadata.version("bpy").split(".")[:2]): (Path(sys.executable), importlib.metadata.version("bpy"))}
    for req in sorted((REPO / "tests").glob("requirements-bpy*.txt")):
        (pin,) = [ln.split("==")[1].strip() for ln in req.read_text().splitlines() if ln.startswith("bpy==")]
        venv = REPO / f".venv-bpy{req.stem.removeprefix('requirements-bpy')}"
        versions[".".join(pin.split(".")[:2])] = (venv / "bin" / "python", pin)
    return versions


BLENDERS = blender_versions()


def blender_python(version: str) -> Path:
    python = BLENDERS[version][0]
    if not python.is_file():
        missing = f"{python} is missing: `make test` builds it (make {python.parents[1].name}/.installed)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    return python


@pytest.mark.parametrize("version", sorted(BLENDERS))
def test_zip_passes_each_blenders_extension_validate(addon_zip, version):
    """``blender --command extension validate`` as each claimed Blender runs it: its own
    ``bl_pkg/cli/blender_ext.py`` (standard library only), on the zip users get. The manifest's
    permission reasons must fit Blender's 64-character limit, for one."""
    bpy_dir = blender_python(version).parents[1] / "lib" / "python3.11" / "site-packages" / "bpy"
    (validator,) = bpy_dir.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py")
    done = subprocess.run([sys.executable, str(validator), "validate", str(addon_zip)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Success" in done.stdout, done.stdout + done.stderr


def test_the_version_matrix_spans_what_the_manifest_claims():
    import tomllib

    manifest = tomllib.loads((REPO / "addon" / "blender_manifest.toml").read_text(encoding="utf-8"))
    tested = sorted(tuple(map(int, v.split("."))) for v in BLENDERS)
    assert tested[0] == tuple(map(int, manifest["blender_version_min"].split(".")))[:2]
    # The maximum is exclusive: the next minor release after the newest tested one.
    assert tuple(map(int, manifest["blender_version_max"].split("."))) == (tested[-1][0], tested[-1][1] + 1, 0)


DENOISER_ON = r'''
# Nothing turns Cycles' own denoiser off before rendering: Combined is then its result and the
# raw render is in Noisy Image, which is what the add-on must denoise.
prefs.backend, prefs.python_path = args["backend"], args["python"]
scene_io = sys.modules["bl_ext.user_default.mcdenoise.scene_io"]
sc = tiny_scene(4, 1, args["frame"])
out["version"] = bpy.app.version_string
out["denoiser_factory"] = sc.cycles.use_denoising
out["problems_factory"] = scene_io.setup_problems(bpy.context)
# F12 without saving, PNG output: Denoise on the Render Result goes through a temporary EXR.
bpy.ops.render.render()
out["button"] = sorted(bpy.ops.mcdenoise.denoise_image(image_name="Render Result"))
out["button_status"] = status()
out["button_file"] = keep(status().split(" in ")[-1].rstrip(")"), "render_result_denoised.exr")
out["format_after_button"] = sc.render.image_settings.file_format
bpy.ops.mcdenoise.setup_passes()
out["after_setup"] = [sc.render.engine, sc.cycles.use_denoising, sc.render.image_settings.file_format,
                      all(vl.cycles.denoising_store_passes for vl in sc.view_layers)]
out["problems_after_setup"] = scene_io.setup_problems(bpy.context)
# An artist who wants Cycles' result in Combined turns its denoiser back on; auto-denoise still
# denoises the raw render.
sc.cycles.use_denoising = True
out["problems_denoiser_on"] = scene_io.setup_problems(bpy.context)
sc.mcdenoise.auto_denoise = True
bpy.ops.render.render(write_still=True)
out["auto_status"] = status()
'''


@pytest.mark.parametrize(("version", "backend"), [("4.2", "EXTERNAL"), ("4.5", "EXTERNAL"), ("5.0", "BLENDER")])
def test_with_cycles_denoiser_on_the_noisy_image_is_denoised(addon_zip, untrained, tmp_path, version, backend):
    """On each Blender the manifest claims: install, register, the panel's problems, Set up
    passes, Denoise on the Render Result and auto-denoise of a written EXR, with Cycles' own
    denoiser on at render time. 4.2 and 4.5 have no PyTorch in their bpy: the model runs in this
    Python's mcdenoise as the add-on's External Python; 5.0 runs it inside Blender."""
    from mcdenoise.inference.frames import denoise_file
    from mcdenoise.models.loader import load_model

    frame = tmp_path / "frame.exr"
    out = run_blender(DENOISER_ON, tmp_path, untrained, blender=blender_python(version), zip=str(addon_zip),
                      frame=str(frame), backend=backend, python=sys.executable)

    assert out["version"].startswith(BLENDERS[version][1]), out["version"]
    note = "Cycles' own denoiser is on"
    assert out["denoiser_factory"] and any(p.startswith(note) for p in out["problems_factory"]), out["problems_factory"]
    assert out["after_setup"] == ["CYCLES", False, "OPEN_EXR_MULTILAYER", True] and out["problems_after_setup"] == []
    assert [p for p in out["problems_denoiser_on"] if p.startswith(note)], out["problems_denoiser_on"]
    assert out["button"] == ["FINISHED"] and out["format_after_button"] == "PNG", out["button_status"]
    assert "Denoised" in out["auto_status"] and not out["auto_status"].startswith("Error"), out["auto_status"]

    loaded = load_model(untrained, device="cpu")
    from_render_result = Path(out["button_file"])
    for written in (frame, from_render_result):
        assert {"ViewLayer.Noisy Image.R", "ViewLayer.Combined.R", "ViewLayer.Denoised.R"} <= channels(written)
        got = read_frame(written, PassNames(color=("Denoised",))).color
        # What `mcdenoise denoise` makes of the same file (it reads Noisy Image first) ...
        cli = denoise_file(loaded, written, tmp_path / "cli.exr").denoised
        np.testing.assert_allclose(got, cli, rtol=1e-4, atol=1e-5)
        # ... and not what denoising Cycles' own result would give.
        from_combined = denoise_file(loaded, written, tmp_path / "combined.exr", PassNames(color=("Combined",))).denoised
        assert np.abs(got - from_combined).max() > 1e-2
    from_render_result.unlink()


MISSING_PASS = r'''
sc = bpy.context.scene
# Installed and enabled without torch/OpenEXR (hidden before install): the button explains.
runtime = sys.modules["bl_ext.user_default.mcdenoise.runtime"]
out["site"] = str(runtime.user_site_dir())
out["missing"] = runtime.missing_modules()
prefs.backend = "AUTO"
img = bpy.data.images.load(args["rgb_only"])
try:
    out["no_torch"] = sorted(bpy.ops.mcdenoise.denoise_image(image_name=img.name))
except RuntimeError as exc:
    out["no_torch"] = str(exc)
for name in args["hide"]:
    del sys.modules[name]
sc.mcdenoise.require_aux = True
# From Python, Blender turns an operator's ERROR report into a RuntimeError carrying the report;
# in the UI the same report shows in the status bar. Either way the operator returned CANCELLED.
try:
    out["button"] = sorted(bpy.ops.mcdenoise.denoise_image(image_name=img.name))
except RuntimeError as exc:
    out["button"], out["report"] = "reported", str(exc)
out["button_status"] = status()
# The same refusal from the external Python: the CLI's JSON error line, worded by the add-on.
prefs.backend, prefs.python_path = "EXTERNAL", args["python"]
try:
    bpy.ops.mcdenoise.denoise_image(image_name=img.name)
except RuntimeError as exc:
    out["external_report"] = str(exc)
prefs.backend = "AUTO"
# The handler path: passes switched off, auto-denoise on; the render must still finish.
sys.modules["bl_ext.user_default.mcdenoise.status"].clear()
sc.mcdenoise.auto_denoise = True
sc = tiny_scene(2, 1, args["render"], store_passes=False)
sc.render.image_settings.media_type = "MULTI_LAYER_IMAGE"
sc.render.image_settings.file_format = "OPEN_EXR_MULTILAYER"
out["render"] = sorted(bpy.ops.render.render(write_still=True))
out["render_status"] = status()
'''


def test_missing_torch_and_missing_passes_are_reported_not_raised(addon_zip, untrained, tmp_path):
    rgb_only = tmp_path / "rgb_only.exr"
    rng = np.random.default_rng(0)
    write_exr(rgb_only, {"": rng.random((32, 32, 3), dtype=np.float32)})
    render = tmp_path / "render.exr"
    out = run_blender(MISSING_PASS, tmp_path, untrained, zip=str(addon_zip), rgb_only=str(rgb_only), render=str(render),
                      hide=["torch", "OpenEXR"], python=sys.executable)

    assert out["missing"] == ["torch", "OpenEXR"]
    assert "Install PyTorch" in out["no_torch"] and "External Python" in out["no_torch"], out["no_torch"]
    assert "blender-user" in out["site"]  # 'Install PyTorch' targets the extension's user folder
    assert out["button"] == "reported" and out["report"].startswith("Error: ") and "albedo" in out["report"]
    # Inside Blender and from the external Python alike, the fix names the add-on's own control,
    # never the CLI's flag.
    for report in (out["report"], out["external_report"]):
        assert f"{rgb_only}: no albedo and normal pass" in report and "untick 'Require albedo/normal'" in report, report
        assert "--require-aux" not in report, report
    assert out["button_status"].startswith("Error") and "albedo" in out["button_status"], out["button_status"]
    assert out["render"] == ["FINISHED"] and render.is_file()
    assert out["render_status"].startswith("Error") and "Denoising Data" in out["render_status"], out["render_status"]
    assert not any(".Denoised." in c for c in channels(render))


PNG_OUTPUT = r'''
sc = tiny_scene(4, 1, args["png"])
sc.render.image_settings.file_format = "PNG"
sc.mcdenoise.auto_denoise = True
bpy.ops.render.render(write_still=True)
out["auto_status"] = status()
out["auto_image"] = "Render Result (denoised)" in bpy.data.images
bpy.data.images.remove(bpy.data.images["Render Result (denoised)"])
sc.mcdenoise.auto_denoise = False
out["button"] = sorted(bpy.ops.mcdenoise.denoise_image(image_name="Render Result"))
out["status"] = status()
out["button_file"] = keep(status().split(" in ")[-1].rstrip(")"), "render_result_denoised.exr")
out["button_image"] = "Render Result (denoised)" in bpy.data.images
out["format"] = sc.render.image_settings.file_format
# F12 without saving: nothing is written, so the Render Result itself is denoised into an image.
bpy.data.images.remove(bpy.data.images["Render Result (denoised)"])
scene_io = sys.modules["bl_ext.user_default.mcdenoise.scene_io"]
sc.render.engine = "BLENDER_EEVEE"
sc.view_layers[0].cycles.denoising_store_passes = False
out["problems_before"] = scene_io.setup_problems(bpy.context)  # the panel's warnings
out["tiles"] = []
for side in (10, 0, 200):  # a side below the core's minimum is taken as it; 0 (whole frame) stays
    sc.mcdenoise.tile = side
    out["tiles"].append(scene_io.make_job(sc, scene_io.Path("in.exr"), scene_io.Path("out.exr")).tile)
sc.mcdenoise.tile = 1024
bpy.ops.mcdenoise.setup_passes()
out["problems_after"] = scene_io.setup_problems(bpy.context)
sc.mcdenoise.auto_denoise = True
sc.render.film_transparent = True  # the shown image keeps the render's alpha
bpy.ops.render.render()
out["f12_status"] = status()
out["f12_image"] = "Render Result (denoised)" in bpy.data.images
if out["f12_image"]:
    import numpy as np
    shown = bpy.data.images["Render Result (denoised)"]
    px = np.empty(shown.size[0] * shown.size[1] * 4, np.float32); shown.pixels.foreach_get(px)
    out["f12_alpha"] = [float(px[3::4].min()), float(px[3::4].max())]
'''


def test_png_output_f12_and_render_result_are_denoised_through_a_temporary_exr(addon_zip, untrained, tmp_path):
    png = tmp_path / "frame.png"
    out = run_blender(PNG_OUTPUT, tmp_path, untrained, zip=str(addon_zip), png=str(png))

    assert out["auto_image"] and "output format has no passes" in out["auto_status"], out["auto_status"]
    assert png.is_file()  # the artist's PNG is written as usual
    assert out["button"] == ["FINISHED"] and out["button_image"], out["status"]
    assert out["format"] == "PNG"  # the temporary switch to multilayer EXR was undone
    written = Path(out["button_file"])
    names = channels(written)
    assert "ViewLayer.Denoising Albedo.R" in names and "ViewLayer.Denoised.R" in names
    assert read_frame(written).samples == 4  # the Render Result saved with its sample count
    written.unlink()
    assert out["problems_before"] == ["Render engine is not Cycles", "Denoising Data passes are off (albedo/normal)",
                                      "Output is not multilayer EXR (passes not written)"]
    assert out["problems_after"] == []
    assert out["tiles"] == [64, 0, 200]
    assert out["f12_image"] and "no EXR was written" in out["f12_status"], out["f12_status"]
    assert out["f12_alpha"][0] < 0.01 and out["f12_alpha"][1] > 0.99, out["f12_alpha"]  # film transparent: alpha kept
