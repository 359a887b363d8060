"""render-dataset --frames T: animated training sequences, with real Blender.

A sequence is rendered once at 32x32, 3 frames, 1-2 spp and 8-spp references (a few seconds on
two cores) and shared by the tests below; the pure-Python tests need no Blender.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from mcdenoise.dataset import layout
from mcdenoise.dataset.scene_description import (
    CAMERA_MOVES,
    MAX_SPEED,
    camera_pose,
    describe_scene,
    describe_sequence,
    light_location,
    object_pose,
)

FRAMES = 3
SMALL = ["--res", "32", "--spp", "1,2", "--ref-spp", "8", "--frames", str(FRAMES), "--quiet"]


def _cli(*args: str) -> int:
    from mcdenoise.cli import main

    return main(["render-dataset", *args])


def _pixels(path: Path) -> dict[str, np.ndarray]:
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        return {name: np.array(ch.pixels) for part in f.parts for name, ch in part.channels.items()}


def _moving_seed() -> int:
    """The first seed whose camera trucks or orbits at least half the top speed: its frames must
    differ in geometry, not only in noise."""
    return next(s for s in range(1000) if (m := describe_sequence(s)["animation"]["camera"])["move"] in ("truck", "orbit")
                and m["speed"] > MAX_SPEED / 2 and not describe_scene(s)["volume"])


# --- pure Python -----------------------------------------------------------------------------

def test_sequence_is_the_still_scene_made_animated() -> None:
    for seed in range(40):
        still, seq = describe_scene(seed), describe_sequence(seed)
        assert json.loads(json.dumps(seq)) == seq == describe_sequence(seed)  # deterministic, JSON-able
        anim = seq.pop("animation")
        assert seq["camera"]["motion_blur"] is False and not any("motion" in o for o in seq["objects"])
        still["camera"]["motion_blur"] = False
        for o in still["objects"]:
            o.pop("motion", None)
        assert seq == still  # the motion comes from its own random stream: the scene is unchanged
        seq["animation"] = anim
        # Frame 1 is the still scene's pose; later frames move as drawn.
        assert camera_pose(seq, 1) == (seq["camera"]["location"], seq["camera"]["target"])
        for move in anim["objects"]:
            obj = seq["objects"][move["index"]]
            assert object_pose(seq, move, 1) == (obj["location"], obj["rotation"])
            loc, rot = object_pose(seq, move, 5)
            assert loc != obj["location"] or rot != obj["rotation"]
        if anim["camera"]["move"] != "still":
            assert camera_pose(seq, 5) != camera_pose(seq, 1)
        for t in range(30):
            assert camera_pose(seq, t)[0][2] >= 0.08 - 1e-9  # never below the ground
            if anim["light"]:
                assert len(light_location(seq, t)) == 3


def test_motion_covers_still_to_fast() -> None:
    anims = [describe_sequence(s)["animation"] for s in range(300)]
    assert {a["camera"]["move"] for a in anims} == set(CAMERA_MOVES)
    speeds = np.array([a["camera"]["speed"] for a in anims if a["camera"]["move"] != "still"])
    assert speeds.max() <= MAX_SPEED and (speeds * 128 > 5).any() and (speeds * 128 < 1).any()
    assert all(1 <= len(a["objects"]) <= 3 for a in anims)
    assert 0.2 < np.mean([a["light"] is not None for a in anims]) < 0.5
    assert {o["kind"] for a in anims for o in a["objects"]} == {"slide", "turn", "slide+turn"}


def test_orbit_keeps_distance_and_pan_keeps_place() -> None:
    seqs = [describe_sequence(s) for s in range(200)]
    orbit = next(d for d in seqs if d["animation"]["camera"]["move"] == "orbit")
    pan = next(d for d in seqs if d["animation"]["camera"]["move"] == "pan")
    loc1, target1 = camera_pose(orbit, 1)
    loc9, target9 = camera_pose(orbit, 9)
    assert target9 == target1 and math.isclose(math.dist(loc1, target1), math.dist(loc9, target9), rel_tol=1e-9)
    assert camera_pose(pan, 9)[0] == camera_pose(pan, 1)[0] != camera_pose(pan, 9)[1]


def test_sequence_layout_names() -> None:
    root = Path("/data/seq")
    assert layout.scene_noisy_frame_path(root, 42, 4, 3) == root / "scene_00042" / "scene_00042_0004spp_0003.exr"
    assert layout.scene_ref_frame_path(root, 42, 3) == root / "scene_00042" / "scene_00042_ref_0003.exr"
    e = layout.SequenceEntry(42, layout.scene_dir(root, 42), 8, (4,))
    assert e.noisy(4, 3) == layout.scene_noisy_frame_path(root, 42, 4, 3)
    assert e.ref(3) == layout.scene_ref_frame_path(root, 42, 3) and e.desc == layout.desc_path(root, 42)
    # The still scenes' names never match a sequence's files (clean_partial deletes those).
    assert not layout.NOISY_RE.match(e.noisy(4, 3).name) and not layout.REF_RE.match(e.ref(3).name)


def test_frames_zero_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _cli("--out", str(tmp_path / "seq"), "--scenes", "1", "--frames", "0")
    assert exc.value.code == 2
    assert "--frames: must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "seq").exists()


# --- real renders ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    pytest.importorskip("bpy")
    out = tmp_path_factory.mktemp("seq") / "ds"
    seed = _moving_seed()
    assert _cli("--out", str(out), "--scenes", "1", "--seed-offset", str(seed), *SMALL) == 0
    return out, seed


@pytest.mark.slow
def test_files_json_and_vector_pass(rendered: tuple[Path, int]) -> None:
    out, seed = rendered
    [entry] = layout.list_sequences(out)
    assert (entry.index, entry.frames, entry.spps) == (0, FRAMES, (1, 2))
    n = entry.dir.name
    expected = {f"{n}.json"} | {entry.ref(t).name for t in (1, 2, 3)} | {entry.noisy(s, t).name for s in (1, 2) for t in (1, 2, 3)}
    assert {p.name for p in entry.dir.iterdir()} == expected
    for t in range(1, FRAMES + 1):
        for exr in (entry.noisy(1, t), entry.noisy(2, t), entry.ref(t)):
            chans = _pixels(exr)
            for c in ("Combined.R", "Denoising Albedo.R", "Denoising Normal.X", "Vector.X", "Vector.W"):
                assert f"{layout.VIEW_LAYER}.{c}" in chans, (exr, c)
    rec = json.loads(entry.desc.read_text())
    assert rec["frames"] == FRAMES and rec["seed"] == seed and rec["description"] == describe_sequence(seed)
    assert rec["render"]["motion_blur"] is False and "Vector" in rec["render"]["passes"]
    assert rec["motion"]["camera"] == rec["description"]["animation"]["camera"]["move"]
    assert len(rec["motion"]["vector_px_mean"]) == FRAMES and min(rec["motion"]["vector_px_mean"]) > 0


@pytest.mark.slow
def test_camera_really_moves(rendered: tuple[Path, int]) -> None:
    out, _ = rendered
    [entry] = layout.list_sequences(out)
    v = f"{layout.VIEW_LAYER}.Vector"
    for t in range(1, FRAMES + 1):
        px = _pixels(entry.ref(t))
        assert np.hypot(px[f"{v}.X"], px[f"{v}.Y"]).max() > 0.5, t  # motion to the previous frame
        assert np.hypot(px[f"{v}.Z"], px[f"{v}.W"]).max() > 0.5, t  # and to the next
    # Geometry, not only noise, differs between frames: the depth pass moved.
    depth = f"{layout.VIEW_LAYER}.Depth.Z"
    first, last = _pixels(entry.ref(1))[depth], _pixels(entry.ref(FRAMES))[depth]
    finite = np.isfinite(first) & np.isfinite(last) & (first < 1e6) & (last < 1e6)
    assert finite.mean() > 0.5
    assert np.abs(first - last)[finite].mean() > 0.01 * np.abs(first[finite]).mean()
    color = f"{layout.VIEW_LAYER}.Combined.R"
    assert not np.array_equal(_pixels(entry.ref(1))[color], _pixels(entry.ref(FRAMES))[color])


@pytest.mark.slow
def test_resume_rerenders_only_the_missing_frame_with_the_same_pixels(
        rendered: tuple[Path, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, seed = rendered
    out = tmp_path / "ds"
    shutil.copytree(src, out)
    [entry] = layout.list_sequences(out)
    gone = entry.ref(2)
    before = _pixels(gone)
    # A run killed before the JSON: one frame's reference missing, everything else in place.
    entry.desc.unlink()
    gone.unlink()
    kept = {p: p.stat().st_mtime_ns for p in entry.dir.iterdir()}
    assert layout.list_sequences(out) == []  # unfinished: not listed
    assert _cli("--out", str(out), "--scenes", "1", "--seed-offset", str(seed), *SMALL) == 0
    assert "1 rendered, 0 already done" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # no other file rendered again
    after = _pixels(gone)
    assert before.keys() == after.keys()
    for name in before:  # a re-render of one frame is the same image, pixel for pixel
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)
    assert layout.list_sequences(out) == [entry]


@pytest.mark.slow
def test_stills_and_sequences_stay_apart(rendered: tuple[Path, int], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from mcdenoise.cli import main

    src, seed = rendered
    out = tmp_path / "ds"
    shutil.copytree(src, out)
    # A still scene beside the sequence: each listing sees its own kind only.
    assert _cli("--out", str(out), "--scenes", "1", "--start", "1", "--res", "32", "--spp", "1", "--ref-spp", "4",
                "--quiet") == 0
    still = layout.scene_dir(out, 1)
    assert sorted(p.name for p in still.iterdir()) == ["scene_00001.json", "scene_00001_0001spp.exr", "scene_00001_ref.exr"]
    assert "frames" not in json.loads(layout.desc_path(out, 1).read_text())
    assert [e.index for e in layout.list_scenes(out)] == [1]
    assert [e.index for e in layout.list_sequences(out)] == [0]
    # Asking for sequences where a still scene is (or the other way round) is refused, clearly.
    capsys.readouterr()
    assert main(["render-dataset", "--out", str(out), "--scenes", "2", "--seed-offset", str(seed), *SMALL]) == 2
    err = capsys.readouterr().err
    assert "scene_00001 already holds a still scene, not 3 frames" in err and "Traceback" not in err
    assert main(["render-dataset", "--out", str(out), "--scenes", "1", "--res", "32", "--spp", "1", "--ref-spp", "4",
                 "--quiet"]) == 2
    assert "scene_00000 already holds a sequence of 3 frames, not a still scene" in capsys.readouterr().err
