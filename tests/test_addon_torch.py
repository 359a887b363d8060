"""PyTorch in Blender, in real Blender (bpy 5.0.1): the 'Install PyTorch' button (online access,
pip's log, staging folder, cancel, the ensurepip fallback), a PyTorch that is found but does not
import, the external Python's kept worker process, and the model's memory around renders.

pip itself would need the network: the installer runs a stand-in (``FAKE_PIP`` below) that
parses pip's command line, writes packages into ``--target`` as pip does, and fails, hangs or
floods its output on request, so the staging, rename, cancel and log paths run for real.
"""

from __future__ import annotations

import re
import shutil
import sys
import zipfile

import numpy as np
import pytest
from mcdenoise.io.exr import read_frame
from mcdenoise.io.passes import PassNames
from mcdenoise.io.write import write_exr
from test_addon import channels, run_blender

pytestmark = pytest.mark.slow

FAKE_PIP = r'''
import os, sys, time
args = sys.argv[1:]
assert args[0] == "install", args
target = args[args.index("--target") + 1]
specs, skip = [], False
for a in args[1:]:
    if skip:
        skip = False
    elif a in ("--target", "--index-url", "--extra-index-url", "--progress-bar"):
        skip = True
    elif not a.startswith("-"):
        specs.append(a)
(spec,) = specs
name = spec.split("=")[0].split(">")[0].split("<")[0]
mode = os.environ.get("FAKE_PIP", "ok")
print(f"Collecting {spec}", flush=True)
partial = os.path.join(target, name + "_partial")  # what pip has written when it is stopped
os.makedirs(partial, exist_ok=True)
if mode == "fail" and name == "torch":
    print("ERROR: Could not find a version that satisfies the requirement torch==2.13.0 (from versions: none)", file=sys.stderr)
    print("ERROR: No matching distribution found for torch==2.13.0", file=sys.stderr)
    sys.exit(1)
if mode == "slow":
    time.sleep(120)
if mode == "chatty":  # 2 MB on stderr: far more than a pipe holds
    for i in range(20000):
        print(f"Downloading chunk {i} " + "." * 100, file=sys.stderr)
os.makedirs(os.path.join(target, name), exist_ok=True)
with open(os.path.join(target, name, "__init__.py"), "w") as f:
    f.write(f"SPEC = {spec!r}\n")
os.rmdir(partial)
print(f"Successfully installed {name}")
'''

INSTALL = r'''
import os, subprocess, time
from urllib.parse import urlparse
inst = sys.modules["bl_ext.user_default.mcdenoise.install"]
rt = sys.modules["bl_ext.user_default.mcdenoise.runtime"]
site = rt.user_site_dir(create=True)
log = site.parent / inst.LOG_NAME
inst.PIP_OVERRIDE = [sys.executable, args["fake_pip"]]
(site / "previous_install.txt").write_text("old")

def state():
    return {"site": sorted(p.name for p in site.iterdir()) if site.is_dir() else None,
            "leftovers": sorted(p.name for p in site.parent.iterdir() if ".staging-" in p.name or ".old-" in p.name)}

def press():
    try:
        return sorted(bpy.ops.mcdenoise.install_torch(variant="CPU"))
    except RuntimeError as exc:  # an ERROR report, raised from Python
        return str(exc)

bpy.context.preferences.system.use_online_access = False
os.environ["FAKE_PIP"] = "ok"
out["offline"] = press()
out["offline_state"], out["offline_log"] = state(), log.exists()
bpy.context.preferences.system.use_online_access = True

os.environ["FAKE_PIP"] = "fail"
out["failed"] = press()
out["failed_state"] = state()

os.environ["FAKE_PIP"] = "slow"
job = inst.PipInstall("CPU", site).start()
deadline = time.time() + 60
while not (job.staging / "torch_partial").is_dir() and time.time() < deadline:
    out["slow_step"] = job.step()
    time.sleep(0.05)
out["partial_seen"] = (job.staging / "torch_partial").is_dir()
proc = job.proc
job.cancel()
out["cancelled_pip_ended"] = proc.poll() is not None
out["cancelled_state"] = state()

os.environ["FAKE_PIP"] = "chatty"
out["installed"] = press()
out["installed_state"] = state()
out["torch_spec"] = (site / "torch" / "__init__.py").read_text()
out["log_size"] = log.stat().st_size
out["log_text_head"] = log.read_text()[:2000]
out["on_path"] = str(site) in sys.path

hosts = set()
for cmd in inst.pip_commands("CUDA", "/t", ["pip"]) + inst.pip_commands("CPU", "/t", ["pip"]):
    hosts |= {urlparse(a).hostname for a in cmd if a.startswith("http")}
out["hosts"] = sorted(hosts)

# No pip in Blender's Python: pip runs from ensurepip's wheel; with neither, a clear refusal.
inst.PIP_OVERRIDE = None
sys.modules["pip"] = None
cmd = inst.pip_command()
done = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=120)
out["fallback_cmd"], out["fallback_rc"], out["fallback_version"] = cmd, done.returncode, done.stdout.strip()
sys.modules["ensurepip"] = None
try:
    inst.pip_command()
    out["no_pip"] = None
except inst.InstallError as exc:
    out["no_pip"] = str(exc)
'''


def test_install_pytorch_checks_online_access_stages_logs_cancels_and_falls_back_to_ensurepip(addon_zip, tmp_path):
    fake_pip = tmp_path / "fake_pip.py"
    fake_pip.write_text(FAKE_PIP, encoding="utf-8")
    out = run_blender(INSTALL, tmp_path, zip=str(addon_zip), fake_pip=str(fake_pip))
    before = {"site": ["previous_install.txt"], "leftovers": []}

    # Offline: refused before pip runs, with where to allow it.
    assert out["offline"].startswith("Error: Blender is offline") and "Online Access" in out["offline"], out["offline"]
    assert out["offline_state"] == before and not out["offline_log"]
    # pip fails: the end of its output and the log's path are shown; the previous install is intact.
    assert "No matching distribution found for torch==2.13.0" in out["failed"], out["failed"]
    assert "install-pytorch.log" in out["failed"]
    assert out["failed_state"] == before
    # Cancelled mid-download: pip stopped, its partial files gone, the previous install intact.
    assert out["partial_seen"] and out["slow_step"] == "running"
    assert out["cancelled_pip_ended"] and out["cancelled_state"] == before
    # A pip that writes megabytes to its output does not hang; the new install replaces the old whole.
    assert out["installed"] == ["FINISHED"]
    assert out["installed_state"] == {"site": ["openexr", "psutil", "torch"], "leftovers": []}
    assert out["torch_spec"] == "SPEC = 'torch==2.13.0'\n" and out["on_path"]
    assert out["log_size"] > 2_000_000 and "--index-url https://download.pytorch.org/whl/cpu" in out["log_text_head"]
    # ensurepip's pip wheel runs pip when Blender's Python has none.
    assert out["fallback_cmd"][1].endswith(".whl/pip") and out["fallback_rc"] == 0, out
    assert out["fallback_version"].startswith("pip ") and ".whl" in out["fallback_version"]
    assert out["no_pip"] and "neither pip nor" in out["no_pip"] and "External Python" in out["no_pip"]

    # The manifest's network permission names every host pip is sent to (PyPI serves its files
    # from files.pythonhosted.org), within Blender's 64-character limit.
    manifest = zipfile.ZipFile(addon_zip).read("blender_manifest.toml").decode()
    (reason,) = re.findall(r'^network\s*=\s*"([^"]*)"', manifest, re.MULTILINE)
    assert out["hosts"] == ["download.pytorch.org", "pypi.org"]
    for host in out["hosts"] + ["files.pythonhosted.org"]:
        assert re.search(rf"(^|[\s,(]){re.escape(host)}($|[\s,)])", reason), (host, reason)
    assert len(reason) <= 64


BROKEN_AND_WORKER = r'''
import os, signal, time
out["torch_loaded_before"] = "torch" in sys.modules
sys.path.insert(0, args["broken"])  # found first, fails to import: a half-installed PyTorch
ext = sys.modules["bl_ext.user_default.mcdenoise.external"]
img = bpy.data.images.load(args["exr"])

def press(image=img):
    try:
        return sorted(bpy.ops.mcdenoise.denoise_image(image_name=image.name))
    except RuntimeError as exc:
        return str(exc)

prefs.backend, prefs.python_path = "AUTO", ""
out["no_external"] = press()
prefs.python_path = args["python"]
out["first"], out["pid1"] = press(), ext.pid()
out["second"], out["pid2"] = press(), ext.pid()
out["torch_in_blender"] = "torch" in sys.modules
os.kill(out["pid2"], signal.SIGKILL)
time.sleep(0.5)
out["after_kill"], out["pid3"] = press(), ext.pid()
bpy.context.scene.mcdenoise.require_aux = True
out["error"], out["pid4"] = press(bpy.data.images.load(args["rgb_only"])), ext.pid()
bpy.ops.preferences.addon_disable(module="bl_ext.user_default.mcdenoise")
try:
    os.kill(out["pid4"], 0)
    out["alive_after_disable"] = True
except ProcessLookupError:
    out["alive_after_disable"] = False
'''


def test_broken_torch_falls_back_to_one_kept_external_worker(addon_zip, untrained, tmp_path, repo_root):
    """``find_spec('torch')`` succeeds but ``import torch`` fails: without an external Python
    the message names the broken folder; with one, Automatic falls back to it. The external
    worker is one process for every press, started again after it was killed, answering core
    errors as before, and gone when the add-on is disabled."""
    broken = tmp_path / "broken"
    (broken / "torch").mkdir(parents=True)
    (broken / "torch" / "__init__.py").write_text(
        'raise OSError("libtorch_cpu.so: cannot open shared object file: No such file or directory")\n')
    exr = tmp_path / "suzanne_4spp.exr"
    shutil.copy(repo_root / "examples" / "suzanne_4spp.exr", exr)
    rgb_only = tmp_path / "rgb_only.exr"
    write_exr(rgb_only, {"": np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)})
    out = run_blender(BROKEN_AND_WORKER, tmp_path, untrained, zip=str(addon_zip), exr=str(exr), rgb_only=str(rgb_only),
                      broken=str(broken), python=sys.executable)

    assert not out["torch_loaded_before"]
    message = out["no_external"]
    assert message.startswith("Error: 'import torch' fails in Blender (OSError: libtorch_cpu.so"), message
    assert f"{broken / 'torch'}" in message and "External Python" in message, message
    assert out["first"] == out["second"] == out["after_kill"] == ["FINISHED"], out
    assert out["pid1"] and out["pid1"] == out["pid2"]  # one process served both
    assert not out["torch_in_blender"]
    assert out["pid3"] and out["pid3"] != out["pid2"]  # killed, started again without an error
    written = tmp_path / "suzanne_4spp_denoised.exr"
    assert "ViewLayer.Denoised.R" in channels(written)
    assert np.isfinite(read_frame(written, PassNames(color=("Denoised",))).color).all()
    # A core error still comes back structured, worded in the add-on's terms; the worker stays.
    assert f"{rgb_only}: no albedo and normal pass" in out["error"] and "untick 'Require albedo/normal'" in out["error"]
    assert out["pid4"] == out["pid3"]
    assert out["alive_after_disable"] is False


MEMORY = r'''
import torch
worker = sys.modules["bl_ext.user_default.mcdenoise.worker"]
calls = []  # a CPU-only PyTorch: make it look as if CUDA were in use, to see the cache handed back
torch.cuda.is_initialized = lambda: True
torch.cuda.empty_cache = lambda: calls.append("empty_cache")
prefs.backend = "BLENDER"
img = bpy.data.images.load(args["exr"])
out["button"] = sorted(bpy.ops.mcdenoise.denoise_image(image_name=img.name))
first = list(worker._MODEL_CACHE.values())
bpy.ops.mcdenoise.denoise_image(image_name=img.name)
out["cached"], out["reused"] = len(first), list(worker._MODEL_CACHE.values()) == first
sc = tiny_scene(1, 1, args["render"], size=32)
bpy.ops.render.render()
out["after_render"], out["calls_render"] = len(worker._MODEL_CACHE), len(calls)
bpy.ops.mcdenoise.setup_passes()
sc.mcdenoise.auto_denoise = True
del calls[:]
bpy.ops.render.render(write_still=True)
out["status"] = status()
out["after_auto"], out["calls_auto"] = len(worker._MODEL_CACHE), len(calls)
sc.mcdenoise.auto_denoise = False
bpy.ops.mcdenoise.denoise_image(image_name=img.name)
out["after_button"] = len(worker._MODEL_CACHE)
'''


def test_model_memory_is_freed_for_renders_and_kept_between_presses(addon_zip, untrained, tmp_path, repo_root):
    exr = tmp_path / "suzanne_4spp.exr"
    shutil.copy(repo_root / "examples" / "suzanne_4spp.exr", exr)
    render = tmp_path / "render.exr"
    out = run_blender(MEMORY, tmp_path, untrained, zip=str(addon_zip), exr=str(exr), render=str(render))

    assert out["button"] == ["FINISHED"] and out["cached"] == 1 and out["reused"]
    assert out["after_render"] == 0 and out["calls_render"] >= 1  # a render start frees it
    # A frame auto-denoised while the render runs is not kept either.
    assert "pass added" in out["status"], out["status"]
    assert "ViewLayer.Denoised.R" in channels(render)
    assert out["after_auto"] == 0 and out["calls_auto"] >= 2
    assert out["after_button"] == 1  # outside renders the button keeps it again
