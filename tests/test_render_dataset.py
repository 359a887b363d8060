"""render-dataset: layout, passes, resume, cleanup, sharding and determinism, with real Blender.

Renders are 32x32 at 1-8 spp so the whole file runs in well under a minute on two cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcdenoise.dataset import layout
from mcdenoise.io.atomic import is_temp, temp_path
from mcdenoise.dataset.render import cycles_seed, select_indices
from mcdenoise.dataset.scene_description import describe_scene

SMALL = ["--res", "32", "--spp", "1,2", "--ref-spp", "8", "--quiet"]
REQUIRED = ("Combined", "Denoising Albedo", "Denoising Normal")


def _cli(*args: str) -> int:
    from mcdenoise.cli import main

    return main(["render-dataset", *args])


def _channels(path: Path) -> set[str]:
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        return {name for part in f.parts for name in part.channels}


# --- pure Python: no Blender needed -------------------------------------------------------

def test_description_is_deterministic_per_seed_and_differs_across_seeds() -> None:
    a = json.dumps(describe_scene(42), sort_keys=True)
    assert a == json.dumps(describe_scene(42), sort_keys=True)
    assert a != json.dumps(describe_scene(43), sort_keys=True)
    assert json.loads(a) == describe_scene(42)  # JSON round trip is lossless


def test_descriptions_cover_variety() -> None:
    descs = [describe_scene(s) for s in range(200)]
    kinds = {o["kind"] for d in descs for o in d["objects"]}
    mats = {o["material"]["kind"] for d in descs for o in d["objects"]}
    lights = {li["type"] for d in descs for li in d["lights"]}
    assert {"suzanne", "blob", "torus", "cylinder"} <= kinds
    assert {"diffuse", "glass", "sharp_metal", "subsurface", "sheen", "coat", "emission"} <= mats
    assert {"area", "point", "spot", "sun", "mesh"} <= lights
    assert any(d["volume"] for d in descs) and any(d["camera"]["dof"] for d in descs)
    assert any(d["camera"]["motion_blur"] for d in descs) and any(d["simple"] for d in descs)
    # Textures from coarse to finer than a pixel: a denoiser trained on coarse patterns only
    # learns to smear fine albedo detail.
    materials = [o["material"] for d in descs for o in d["objects"]] + [d["room"][k] for d in descs for k in ("ground", "wall")]
    scales = np.array([m["texture"]["scale"] for m in materials if m["texture"]])
    assert scales.min() >= 1.0 and scales.max() <= 80.0
    assert (scales < 3).mean() > 0.15 and (scales > 25).mean() > 0.15


def test_layout_names() -> None:
    root = Path("/data")
    assert layout.scene_dir(root, 42) == root / "scene_00042"
    assert layout.noisy_path(root, 42, 1).name == "scene_00042_0001spp.exr"
    assert layout.ref_path(root, 42).name == "scene_00042_ref.exr"
    assert layout.desc_path(root, 42).name == "scene_00042.json"
    assert layout.NOISY_RE.match("scene_00042_0016spp.exr")
    assert not layout.NOISY_RE.match(temp_path(layout.noisy_path(root, 42, 16)).name)


def test_shard_selection_and_seeds() -> None:
    assert select_indices(0, 5, (1, 2)) == [1, 3]
    assert select_indices(3, 4, (0, 3)) == [3, 6]
    assert select_indices(0, 4, (0, 1)) == [0, 1, 2, 3]
    seeds = {cycles_seed(7, r) for r in ("noisy:1", "noisy:2", "ref")}
    assert len(seeds) == 3 and cycles_seed(7, "ref") == cycles_seed(7, "ref")


def test_bad_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        _cli("--out", str(tmp_path), "--scenes", "1", "--shard", "2/2")
    assert _cli("--out", str(tmp_path), "--scenes", "1", "--spp", "1,16", "--ref-spp", "8") == 2


# --- real renders ----------------------------------------------------------------------------

@pytest.mark.slow
def test_render_layout_passes_resume_and_cleanup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("bpy")
    out = tmp_path / "ds"
    assert _cli("--out", str(out), "--scenes", "2", *SMALL) == 0
    assert "2 rendered, 0 already done" in capsys.readouterr().out

    entries = layout.list_scenes(out)
    assert [e.index for e in entries] == [0, 1]
    for e in entries:
        assert e.spps == (1, 2)
        names = sorted(p.name for p in e.dir.iterdir())
        n = e.dir.name
        assert names == [f"{n}.json", f"{n}_0001spp.exr", f"{n}_0002spp.exr", f"{n}_ref.exr"]
        for exr in (e.noisy(1), e.noisy(2), e.ref):
            chans = _channels(exr)
            for p in REQUIRED:
                assert f"{layout.VIEW_LAYER}.{p}.R" in chans or f"{layout.VIEW_LAYER}.{p}.X" in chans, (exr, p)
        rec = json.loads(e.desc.read_text())
        assert rec["description"] == describe_scene(e.index)
        assert rec["render"]["spp"] == [1, 2] and rec["render"]["ref_spp"] == 8
        assert len({*rec["render"]["noisy_seeds"].values(), rec["render"]["ref_seed"]}) == 3

    # Re-run: finished scenes are skipped and untouched.
    mtime = entries[0].ref.stat().st_mtime_ns
    assert _cli("--out", str(out), "--scenes", "2", *SMALL) == 0
    assert "0 rendered, 2 already done" in capsys.readouterr().out
    assert entries[0].ref.stat().st_mtime_ns == mtime

    # An interrupted scene (a killed process's temp file, no JSON) is cleaned and redone.
    stale_dir = layout.scene_dir(out, 2)
    stale_dir.mkdir()
    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait()
    stale = temp_path(layout.noisy_path(out, 2, 1), pid=killed.pid)
    stale.write_bytes(b"half an EXR")
    assert _cli("--out", str(out), "--scenes", "3", *SMALL) == 0
    assert "1 rendered, 2 already done" in capsys.readouterr().out
    assert not stale.exists()
    assert layout.is_done(out, 2) and not any(is_temp(p) for p in stale_dir.iterdir())


@pytest.mark.slow
def test_shard_renders_only_its_indices(tmp_path: Path) -> None:
    pytest.importorskip("bpy")
    out = tmp_path / "ds"
    assert _cli("--out", str(out), "--scenes", "4", "--shard", "1/2", "--seed-offset", "1000000", *SMALL) == 0
    assert [e.index for e in layout.list_scenes(out)] == [1, 3]
    rec = json.loads(layout.desc_path(out, 3).read_text())
    assert rec["seed"] == 1_000_003


def test_scene_lock_respects_live_owner_and_takes_over_dead_one(tmp_path: Path) -> None:
    import os
    import socket

    from mcdenoise.dataset.render import acquire_scene, release_scene

    folder = tmp_path / "scene_00000"
    assert acquire_scene(folder) and not acquire_scene(folder)  # second claim fails
    release_scene(folder)
    (folder / layout.LOCK_NAME).write_text(f"{socket.gethostname()} {os.getppid()}\n")
    assert not acquire_scene(folder)  # live owner
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / layout.LOCK_NAME).write_text(f"{socket.gethostname()} {dead.pid}\n")
    assert acquire_scene(folder)  # stale lock taken over
    release_scene(folder)
    assert not (folder / layout.LOCK_NAME).exists()


@pytest.mark.slow
def test_locked_scene_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os
    import socket

    pytest.importorskip("bpy")
    out = tmp_path / "ds"
    folder = layout.scene_dir(out, 0)
    folder.mkdir(parents=True)
    partial = temp_path(layout.ref_path(out, 0), pid=os.getppid())
    partial.write_bytes(b"another process is writing this")
    (folder / layout.LOCK_NAME).write_text(f"{socket.gethostname()} {os.getppid()}\n")
    assert _cli("--out", str(out), "--scenes", "2", *SMALL) == 0
    assert "1 rendered, 0 already done, 1 locked by another process" in capsys.readouterr().out
    assert partial.exists() and not layout.is_done(out, 0) and layout.is_done(out, 1)


@pytest.mark.slow
def test_sigterm_during_a_render_stops_the_run(tmp_path: Path) -> None:
    """Cycles catches exceptions raised in its render callbacks, so a SIGTERM that arrives
    mid-render used to be swallowed and the run went on. It must stop after that render: exit
    143, the scene left unfinished (no JSON) and no temp file behind."""
    import os
    import signal
    import time

    pytest.importorskip("bpy")
    out = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-m", "mcdenoise", "render-dataset", "--out", str(out), "--scenes", "3",
                             "--res", "48", "--spp", "1", "--ref-spp", "1000", "--threads", "1", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    noisy = layout.noisy_path(out, 0, 1)
    deadline = time.monotonic() + 120
    while not noisy.is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert noisy.is_file(), proc.communicate()
    time.sleep(0.3)  # inside the 1000-spp reference render, seconds long
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-2000:]
    assert "terminated (SIGTERM)" in err
    assert layout.list_scenes(out) == [] and not list(out.rglob("*.tmp*"))
