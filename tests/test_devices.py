"""GPU kinds beyond CUDA (ROCm, Apple MPS, Intel XPU): one table (``choices.DEVICES``), one rule
that turns a name into a torch device (``inference.runtime.resolve_device``), the CLI's
``--device`` and the add-on's Device menu. This machine has no GPU, so which ones PyTorch sees
is monkeypatched; a kind it does not see must fail with a message, never fall back silently."""

from __future__ import annotations

import argparse
import itertools
import platform
import shutil

import pytest
import torch

from mcdenoise import choices
from mcdenoise.cli.argtypes import torch_device
from mcdenoise.errors import DeviceError
from mcdenoise.inference import runtime


@pytest.fixture
def gpus(monkeypatch):
    """``gpus("cuda", "xpu")``: PyTorch sees exactly those GPU kinds."""

    def see(*kinds: str) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: "cuda" in kinds)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: "mps" in kinds)
        monkeypatch.setattr(torch.xpu, "is_available", lambda: "xpu" in kinds)

    return see


def test_auto_takes_the_first_gpu_kind_in_the_tables_order(gpus):
    gpus()
    assert runtime.gpu_devices() == [] and runtime.resolve_device("auto") == torch.device("cpu")
    for seen in itertools.chain.from_iterable(itertools.combinations(choices.GPU_DEVICES, n) for n in (1, 2, 3)):
        gpus(*seen)
        assert runtime.gpu_devices() == list(seen)
        assert runtime.resolve_device("auto").type == seen[0]


@pytest.mark.parametrize(("name", "expected"), [("mps", "mps"), ("xpu", "xpu"), ("xpu:1", "xpu:1"), ("CUDA:0", "cuda:0"),
                                                 ("cpu", "cpu")])
def test_each_kind_resolves_when_pytorch_sees_it(gpus, name, expected):
    gpus(*choices.GPU_DEVICES)
    assert runtime.resolve_device(name) == torch.device(expected)


@pytest.mark.parametrize("kind", choices.GPU_DEVICES)
def test_a_kind_pytorch_does_not_see_is_an_error_that_names_it(gpus, monkeypatch, kind):
    gpus(*(k for k in choices.GPU_DEVICES if k != kind))
    names = {"cuda": "CUDA", "mps": "MPS", "xpu": "XPU"}
    with pytest.raises(DeviceError, match=f"PyTorch sees no {names[kind]} GPU") as caught:
        runtime.resolve_device(kind)
    assert caught.value.fix == "device_cuda"  # worded "use --device cpu or auto" / the add-on's menu
    if kind == "cuda":  # a ROCm build names AMD GPUs cuda; the message says what the user has
        monkeypatch.setattr(torch.version, "hip", "6.2")
        with pytest.raises(DeviceError, match="PyTorch sees no ROCm GPU"):
            runtime.resolve_device("cuda:1")


def test_the_cli_and_the_resolver_accept_the_same_names(gpus):
    """What ``--device`` parses is exactly what resolves (every GPU seen), and both refuse the rest."""
    gpus(*choices.GPU_DEVICES)
    candidates = [*choices.TORCH_DEVICES, *(f"{n}:{i}" for n in choices.TORCH_DEVICES for i in ("0", "3", "x")),
                  "gpu", "rocm", "metal", "MPS", "Xpu:2", ""]
    for text in candidates:
        try:
            torch_device(text)
            parsed = True
        except argparse.ArgumentTypeError:
            parsed = False
        try:
            runtime.resolve_device(text or "?")
            resolved = True
        except DeviceError:
            resolved = False
        assert parsed == resolved, text
    assert {"auto", "cpu", "cuda", "mps", "xpu"} == set(choices.TORCH_DEVICES)


def test_denoise_with_a_gpu_this_machine_lacks_says_so(cli, tmp_path, repo_root, gpus):
    gpus()
    exr = tmp_path / "in.exr"
    shutil.copy(repo_root / "examples" / "suzanne_4spp.exr", exr)
    code, _out, err = cli("denoise", exr, "-o", tmp_path / "out.exr", "--device", "mps", "--quality", "fast")
    assert code != 0 and "PyTorch sees no MPS GPU" in err and "--device cpu or auto" in err, err
    assert "Traceback" not in err and not (tmp_path / "out.exr").exists()


def test_each_platform_offers_its_own_gpu_kinds():
    assert [d.name for d in choices.DEVICES.values() if d.on_platform("Darwin", "arm64")] == ["auto", "cpu", "mps"]
    assert [d.name for d in choices.DEVICES.values() if d.on_platform("Darwin", "x86_64")] == ["auto", "cpu"]
    for system, machine in (("Linux", "x86_64"), ("Windows", "AMD64")):
        assert [d.name for d in choices.DEVICES.values() if d.on_platform(system, machine)] == ["auto", "cpu", "cuda", "xpu"]


MENU = r'''
devices = sys.modules["bl_ext.user_default.mcdenoise.devices"]
out["offered"] = {f"{s}/{m}/{g}": devices.offered(s, m, None if g == "?" else [k for k in g.split(",") if k])
                  for s, m, g in (("Darwin", "arm64", "?"), ("Linux", "x86_64", "?"), ("Linux", "x86_64", ""),
                                  ("Windows", "AMD64", "xpu"), ("Darwin", "arm64", "mps"))}
out["before_torch"] = devices.shown(prefs.device)
import torch  # loaded in Blender: the menu keeps only the GPUs it sees (none on this machine)
out["after_torch"] = devices.shown(prefs.device)
prefs.device = "MPS"  # a choice saved on an Apple silicon Mac: still shown, and the button says why it fails
out["saved"] = devices.shown(prefs.device)
img = bpy.data.images.load(args["exr"])
try:
    out["button"] = sorted(bpy.ops.mcdenoise.denoise_image(image_name=img.name))
except RuntimeError as exc:
    out["button"] = str(exc)
prefs.device = "CPU"
out["cpu"] = sorted(bpy.ops.mcdenoise.denoise_image(image_name=img.name))
'''


@pytest.mark.skipif(platform.system() != "Linux" or platform.machine() != "x86_64", reason="expects the menu of Linux x86-64")
def test_the_addon_menu_offers_what_the_platform_and_pytorch_have(addon_zip, untrained, tmp_path, repo_root):
    from test_addon import run_blender

    exr = tmp_path / "in.exr"
    shutil.copy(repo_root / "examples" / "suzanne_4spp.exr", exr)
    out = run_blender(MENU, tmp_path, untrained, zip=str(addon_zip), exr=str(exr))

    assert out["offered"] == {"Darwin/arm64/?": ["auto", "cpu", "mps"], "Linux/x86_64/?": ["auto", "cpu", "cuda", "xpu"],
                              "Linux/x86_64/": ["auto", "cpu"], "Windows/AMD64/xpu": ["auto", "cpu", "xpu"],
                              "Darwin/arm64/mps": ["auto", "cpu", "mps"]}
    assert out["before_torch"] == ["AUTO", "CPU", "GPU", "XPU"]  # this Linux machine, PyTorch not loaded yet
    assert out["after_torch"] == ["AUTO", "CPU"]
    assert out["saved"] == ["AUTO", "CPU", "MPS"]
    assert "PyTorch sees no MPS GPU" in out["button"] and "set Device to CPU or Automatic" in out["button"], out["button"]
    assert out["cpu"] == ["FINISHED"]
