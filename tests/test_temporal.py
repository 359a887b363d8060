"""Temporal path (issue 20): the Vector pass's convention on a real Blender render, backward
warping against hand-made flows, the blend's rejection of disocclusions, history restarts at
cuts, and the CLI's sequences: shards joined = one run, resume = one run, fallback without a
Vector pass. Frames are 24x32 to 48x32 so the file runs in well under a minute on two cores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
import torch

from batch_fixtures import denoised_pass, make_tiny_weights
from exr_fixtures import box
from mcdenoise.batch.sequence import FrameSource
from mcdenoise.io.exr import read_frame
from mcdenoise.io.passes import PassNames
from mcdenoise.temporal import plan, stabilise, warp
from mcdenoise.temporal.blendnet import HAND_MADE
from mcdenoise.temporal.history import TemporalHistory, fetch as history_fetch


def _vector(h: int, w: int, to_prev: tuple[float, float], to_next: tuple[float, float]) -> np.ndarray:
    """A Blender Vector pass for uniform motion, given in array coordinates (column, row):
    X, Y = to-previous with Y up; Z, W = to-next negated, Y up (Cycles' convention)."""
    v = np.zeros((h, w, 4), np.float32)
    v[..., 0], v[..., 1] = to_prev[0], -to_prev[1]
    v[..., 2], v[..., 3] = -to_next[0], to_next[1]
    return v


# --- warping against hand-made flows ------------------------------------------------------------

def test_backward_warp_is_exact_on_a_linear_ramp_and_masks_out_of_frame() -> None:
    h, w = 24, 32
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    prev = np.stack([2.0 * xx + 3.0 * yy, xx - yy, np.full_like(xx, 7.0)], -1)
    shift = (2.5, -1.25)  # the surface came from 2.5 px to the right and 1.25 px higher up
    warped, inside = warp.backward_warp(prev, _vector(h, w, shift, (0, 0)))
    sx, sy = xx + shift[0], yy + shift[1]
    expected = np.stack([2.0 * sx + 3.0 * sy, sx - sy, np.full_like(xx, 7.0)], -1)
    inside = inside.numpy()
    exact = (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)  # past the outermost centres: the border pixel
    assert (inside >= exact).all() and exact.sum() > 0.8 * (h - 2) * (w - 3)
    assert np.allclose(warped.numpy()[exact], expected[exact], atol=1e-4)  # bilinear is exact on a plane
    assert not inside[:, -2:].any() and not inside[0, :].any()  # sampled past the right and top edges
    assert inside[2:, : w - 3].all()


def test_backward_warp_follows_a_rotation_field() -> None:
    """A per-pixel flow (rotation about the centre): each pixel fetches the previous frame where
    the rotation says it came from."""
    h = w = 33
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c, a = 16.0, 0.1
    px = c + (xx - c) * math.cos(a) - (yy - c) * math.sin(a)
    py = c + (xx - c) * math.sin(a) + (yy - c) * math.cos(a)
    prev = np.stack([np.sin(xx / 3.0), np.cos(yy / 4.0), xx * 0.01], -1).astype(np.float32)
    v = np.zeros((h, w, 4), np.float32)
    v[..., 0], v[..., 1] = px - xx, -(py - yy)
    warped, inside = warp.backward_warp(prev, v)
    ref = torch.nn.functional.grid_sample(  # the same fetch written independently, in normalised coordinates
        torch.from_numpy(prev).permute(2, 0, 1)[None],
        torch.from_numpy(np.stack([px / (w - 1) * 2 - 1, py / (h - 1) * 2 - 1], -1))[None].float(),
        align_corners=True)[0].permute(1, 2, 0).numpy()
    within = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    outside = (px < -0.5) | (px > w - 0.5) | (py < -0.5) | (py > h - 0.5)
    assert inside.numpy()[within].all() and not inside.numpy()[outside].any() and outside.any()  # the corners turn out
    assert np.allclose(warped.numpy()[within], ref[within], atol=1e-5)
    # a pixel whose source lands on a pixel centre gets exactly that pixel
    ys, xs = np.nonzero((np.abs(px - px.round()) < 1e-4) & (np.abs(py - py.round()) < 1e-4))
    for y, x in zip(ys, xs):
        assert np.allclose(warped.numpy()[y, x], prev[round(py[y, x]), round(px[y, x])], atol=1e-5)


def test_validity_flags_a_disocclusion_by_forward_backward_check() -> None:
    """A 6x6 square moves 4 px right over a still background: the background it uncovers has
    zero motion now, but the previous frame's to-next motion there was the square's, so it does
    not lead back: invalid. Everywhere else is valid."""
    h, w = 16, 24
    cur = np.zeros((h, w, 4), np.float32)
    prev = np.zeros((h, w, 4), np.float32)
    cur[5:11, 10:16] = _vector(6, 6, (-4, 0), (4, 0))  # square now at columns 10..15
    prev[5:11, 6:12] = _vector(6, 6, (-4, 0), (4, 0))  # it was at columns 6..11
    _, valid = warp.validity(cur, prev)
    valid = valid.numpy()
    assert not valid[5:11, 6:10].any()  # uncovered this frame
    assert valid[5:11, 10:16].all()  # the square itself, tracked
    assert valid[:5].all() and valid[11:].all() and valid[:, :6].all() and valid[:, 17:].all()


# --- the Vector pass on a real render -------------------------------------------------------------

def _render_moving_cube(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames 1 and 2 of an emissive checker cube moving 2 px right and 1 px up per frame in
    front of an orthographic camera (8 px per unit), Cycles at 4 spp: (colour 1, colour 2,
    vector 2). An emission shader on a black world is nearly noise-free at a few samples."""
    from mcdenoise.dataset.blender_scene import _node_tree, import_bpy

    bpy = import_bpy()
    import bmesh

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.edit.keyframe_new_interpolation_type = "LINEAR"
    sc = bpy.context.scene
    sc.render.engine = "CYCLES"
    sc.cycles.samples, sc.cycles.device, sc.cycles.use_denoising = 4, "CPU", False
    sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = 48, 32, 100
    sc.render.use_motion_blur = False
    sc.render.threads_mode, sc.render.threads = "FIXED", 2
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    cam.data.type, cam.data.ortho_scale = "ORTHO", 6.0
    cam.location, cam.rotation_euler = (0, -10, 0), (math.pi / 2, 0, 0)
    sc.collection.objects.link(cam)
    sc.camera = cam
    mesh = bpy.data.meshes.new("cube")
    bm = bmesh.new()
    bmesh.ops.create_cube(bm, size=2.0)
    bm.to_mesh(mesh)
    bm.free()
    cube = bpy.data.objects.new("cube", mesh)
    sc.collection.objects.link(cube)
    mat = bpy.data.materials.new("checker")
    nt = _node_tree(mat)
    nt.nodes.clear()
    tex, em, out = nt.nodes.new("ShaderNodeTexChecker"), nt.nodes.new("ShaderNodeEmission"), nt.nodes.new("ShaderNodeOutputMaterial")
    tex.inputs["Scale"].default_value = 3.0
    nt.links.new(tex.outputs["Color"], em.inputs["Color"])
    nt.links.new(em.outputs["Emission"], out.inputs["Surface"])
    mesh.materials.append(mat)
    for frame, x, z in ((1, -0.25, -0.125), (2, 0.0, 0.0), (3, 0.25, 0.125)):
        cube.location = (x, 0, z)
        cube.keyframe_insert("location", frame=frame)
    sc.view_layers[0].use_pass_vector = True
    settings = sc.render.image_settings
    settings.media_type = "MULTI_LAYER_IMAGE"
    settings.file_format, settings.color_depth = "OPEN_EXR_MULTILAYER", "32"
    sc.render.use_file_extension = False
    planes = []
    for frame in (1, 2):
        sc.frame_set(frame)
        sc.render.filepath = str(folder / f"cube_{frame}.exr")
        bpy.ops.render.render(write_still=True)
        with OpenEXR.File(sc.render.filepath, separate_channels=True) as f:
            ch = {n: c.pixels.copy() for p in f.parts for n, c in p.channels.items()}
        planes.append(ch)
    rgb = [np.stack([p[f"ViewLayer.Combined.{c}"] for c in "RGB"], -1) for p in planes]
    vec = np.stack([planes[1][f"ViewLayer.Vector.{c}"] for c in "XYZW"], -1)
    return rgb[0], rgb[1], vec


def test_blender_vector_pass_convention_and_warp_on_a_real_render(tmp_path: Path) -> None:
    frame1, frame2, vector = _render_moving_cube(tmp_path)
    on_cube = np.abs(vector).sum(-1) > 0
    assert on_cube.sum() >= 150  # the 16x16 px cube face
    # X, Y: to the previous frame, Y up (the cube came from the left and from below);
    # Z, W: the motion to the next frame negated (it goes on right and up).
    assert np.allclose(vector[on_cube], [-2.0, -1.0, -2.0, -1.0], atol=1e-3)
    flow = warp.flow_to_previous(vector).numpy()[on_cube]
    assert np.allclose(flow, [-2.0, 1.0], atol=1e-3)  # array rows grow downwards
    assert np.allclose(warp.flow_to_next(vector).numpy()[on_cube], [2.0, -1.0], atol=1e-3)
    # Frame 1 warped by frame 2's vectors lands on frame 2 wherever the cube is seen in both.
    warped, inside = warp.backward_warp(frame1, vector)
    interior = on_cube.copy()
    interior[1:-1, 1:-1] &= on_cube[:-2, 1:-1] & on_cube[2:, 1:-1] & on_cube[1:-1, :-2] & on_cube[1:-1, 2:]
    interior &= np.roll(on_cube, (-2, 3), (0, 1))  # away from edges the moved face does not cover
    assert interior.sum() >= 80 and inside.numpy()[interior].all()
    err_warped = np.abs(warped.numpy()[interior] - frame2[interior]).mean()
    err_unwarped = np.abs(frame1[interior] - frame2[interior]).mean()
    assert err_warped < 0.15 * err_unwarped, (err_warped, err_unwarped)


# --- the blend and the history ------------------------------------------------------------------

def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, np.float32))


def test_blend_keeps_history_within_tolerance_and_drops_it_at_disocclusions_and_highlights() -> None:
    h, w = 8, 8
    current = np.full((h, w, 3), 0.5, np.float32)
    noise = stabilise.tolerance_noise(_t(current * 1.2), _t(current), 1.0)
    near = _t(np.full((h, w, 3), 0.505, np.float32))  # within the box: averaged in
    count = torch.full((h, w), 3.0)
    valid = torch.ones((h, w), dtype=torch.bool)
    out, n = stabilise.blend(_t(current), noise, near, count, valid, 1.0)
    assert np.allclose(out.numpy(), 0.25 * 0.5 + 0.75 * 0.505, atol=1e-5) and torch.all(n == 4)
    valid[:4] = False  # disoccluded rows: the current frame alone, the count starts again
    out, n = stabilise.blend(_t(current), noise, near, count, valid, 1.0)
    assert np.array_equal(out.numpy()[:4], current[:4]) and torch.all(n[:4] == 1) and torch.all(n[4:] == 4)
    highlight = _t(np.full((h, w, 3), 5.0, np.float32))  # a highlight that moved away: far outside the box
    out, n = stabilise.blend(_t(current), noise, highlight, count, torch.ones((h, w), dtype=torch.bool), 1.0)
    assert np.array_equal(out.numpy(), current) and torch.all(n == 1)


def test_history_is_fetched_without_a_dark_halo_around_a_bright_highlight() -> None:
    """A 1-px highlight 5000x its surroundings, fetched half a pixel away (what a camera moving
    0.5 px a frame asks for): interpolated in radiance, bicubic's negative lobes would leave a
    black ring around it (and a blend that rejects the history there); in the blend's log space
    the neighbours stay near the background, the highlight's energy stays near it, and pixels
    out of the kernel's reach are untouched."""
    h, w = 9, 9
    image = np.full((h, w, 3), 0.2, np.float32)
    image[4, 4] = 1000.0
    points = warp.sample_points(torch.tensor([0.5, 0.0]).expand(h, w, 2).clone())
    linear = warp.sample(_t(image), points, "bicubic")
    assert linear.min() < 0.0  # the halo this test is about
    fetched = history_fetch(_t(image), points, 1.0).numpy()
    assert fetched.min() >= 0.2 * 0.95
    assert fetched[4, 3:6].max() > 10.0  # the highlight is still there, between its two pixels
    assert np.allclose(fetched[:2], image[:2], rtol=1e-5)  # beyond the kernel: the image as it was


def test_history_restarts_at_the_first_frame_cuts_and_frames_without_vectors() -> None:
    rng = np.random.default_rng(0)
    h, w = 12, 16
    clean = np.full((h, w, 3), 0.4, np.float32)
    still = np.zeros((h, w, 4), np.float32)
    frames = {n: (clean * rng.normal(1.0, 0.02, clean.shape)).astype(np.float32) for n in range(1, 12)}
    noisy = {n: (clean * rng.exponential(1.0, clean.shape)).astype(np.float32) for n in frames}
    history = TemporalHistory(window=4, blend=HAND_MADE)  # the numbers below are the hand-made blend's, shipped weights or not
    assert np.array_equal(history.push(1, frames[1], noisy[1], still, 2.0), frames[1])  # the first frame: alone
    two = history.push(2, frames[2], noisy[2], still, 2.0)
    assert np.allclose(two, (frames[1] + frames[2]) / 2, atol=1e-6)  # a still, clean pair: their mean
    assert np.array_equal(history.push(5, frames[5], noisy[5], still, 2.0), frames[5])  # a cut (gap in the numbers)
    assert not np.array_equal(history.push(6, frames[6], noisy[6], still, 2.0), frames[6])
    assert np.array_equal(history.push(7, frames[7], noisy[7], None, 2.0), frames[7])  # no Vector pass
    assert np.array_equal(history.push(8, frames[8], noisy[8], still, 2.0), frames[8])  # starts over after it
    outs = [history.push(n, frames[n], noisy[n], still, 2.0) for n in (9, 10, 11)]
    flicker_in = np.mean([np.abs(frames[n] - frames[n - 1]).mean() for n in (10, 11)])
    flicker_out = np.mean([np.abs(outs[i] - outs[i - 1]).mean() for i in (1, 2)])
    assert flicker_out < 0.5 * flicker_in  # a still shot's frame-to-frame wobble is averaged away


# --- sequences in the CLI -----------------------------------------------------------------------

def _write_shot(folder: Path, frames, vector: bool = True, h: int = 24, w: int = 32, seed: int = 0) -> None:
    """A Blender-like sequence: a texture sliding 1 px right per frame (and a Vector pass that
    says so), with per-frame Monte-Carlo-like noise (``seed``: another draw of it)."""
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for n in frames:
        rng = np.random.default_rng(n + 1000 * seed)
        x = xx - n
        clean = np.stack([0.5 + 0.4 * np.sin(x / 4), 0.4 + 0.3 * np.cos(yy / 5), 0.3 + 0.2 * np.sin((x + yy) / 6)], -1)
        passes = {"Combined": {c: (clean[..., i] * rng.exponential(1.0, (h, w))).astype(np.float32) for i, c in enumerate("RGB")},
                  "Denoising Albedo": {c: np.clip(clean[..., i] * 0.8, 0, 1).astype(np.float16) for i, c in enumerate("RGB")},
                  "Denoising Normal": {"X": np.zeros((h, w), np.float32), "Y": np.zeros((h, w), np.float32),
                                       "Z": np.ones((h, w), np.float32)}}
        if vector:
            v = _vector(h, w, (-1.0, 0.0), (1.0, 0.0))
            passes["Vector"] = {c: v[..., i] for i, c in enumerate("XYZW")}
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "dataWindow": box(0, 0, w - 1, h - 1),
                  "displayWindow": box(0, 0, w - 1, h - 1)}
        parts = [OpenEXR.Part(dict(header, name=f"ViewLayer.{p}"), {f"ViewLayer.{p}.{c}": px for c, px in ch.items()},
                              f"ViewLayer.{p}") for p, ch in passes.items()]
        OpenEXR.File(parts).write(str(folder / f"shot_{n:04d}.exr"))


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.pt")


def _outputs(folder: Path, frames) -> dict[int, np.ndarray]:
    return {n: denoised_pass(folder / f"shot_{n:04d}.exr") for n in frames}


def test_shards_joined_and_a_resumed_run_equal_one_run_pixel_for_pixel(tmp_path: Path, cli, weights: Path) -> None:
    shot = tmp_path / "shot"
    _write_shot(shot, range(1, 11))
    pattern = str(shot / "shot_####.exr")
    whole = tmp_path / "whole"
    code, out, err = cli("denoise", pattern, "--frames", "1-10", "--out", whole, "--weights", weights, "-v")
    assert code == 0, err
    assert "temporal: on" in out and "4 history frames" in out
    one_run = _outputs(whole, range(1, 11))
    assert len(list(whole.glob("*.exr"))) == 10  # no frame dropped at either end
    alone = tmp_path / "alone"
    assert cli("denoise", pattern, "--out", alone, "--weights", weights, "--no-temporal", "-q")[0] == 0
    single = _outputs(alone, range(1, 11))
    assert np.array_equal(single[1], one_run[1])  # the first frame has no history
    assert all(not np.array_equal(single[n], one_run[n]) for n in range(2, 11))
    sharded = tmp_path / "sharded"
    for i in range(3):  # blocks 1-3, 4-6, 7-10, each warmed up on the frames before it
        assert cli("denoise", pattern, "--out", sharded, "--weights", weights, "--shard", f"{i}/3", "-q")[0] == 0
    joined = _outputs(sharded, range(1, 11))
    assert all(np.array_equal(joined[n], one_run[n]) for n in range(1, 11))
    assert sorted(p.name for p in sharded.glob("*.exr")) == sorted(p.name for p in whole.glob("*.exr"))
    # A run killed after frame 6 (and one output lost in the middle) resumes to the same pixels.
    for n in (3, 7, 8, 9, 10):
        (sharded / f"shot_{n:04d}.exr").unlink()
    code, out, err = cli("denoise", pattern, "--out", sharded, "--weights", weights)
    assert code == 0, err
    assert "done 5 / skipped 5 / failed 0 of 10" in out
    assert all(np.array_equal(d, one_run[n]) for n, d in _outputs(sharded, range(1, 11)).items())
    # A warm-up shorter than the history differs: the warm-up is what makes shards exact.
    short = tmp_path / "short"
    assert cli("denoise", pattern, "--out", short, "--weights", weights, "--shard", "1/2", "--temporal-warmup", "1", "-q")[0] == 0
    assert not np.array_equal(denoised_pass(short / "shot_0008.exr"), one_run[8])


def test_without_a_vector_pass_it_denoises_frame_by_frame_and_says_so_once(tmp_path: Path, cli, weights: Path) -> None:
    shot = tmp_path / "shot"
    _write_shot(shot, range(1, 5), vector=False)
    code, out, err = cli("denoise", str(shot / "shot_####.exr"), "--out", tmp_path / "a", "--weights", weights)
    assert code == 0, err
    assert out.count("no Vector pass") == 1 and "frame by frame" in out
    assert cli("denoise", str(shot / "shot_####.exr"), "--out", tmp_path / "b", "--weights", weights, "--no-temporal", "-q")[0] == 0
    for n in range(1, 5):
        assert np.array_equal(denoised_pass(tmp_path / "a" / f"shot_{n:04d}.exr"), denoised_pass(tmp_path / "b" / f"shot_{n:04d}.exr"))


def test_shard_blocks_and_warmup_plan() -> None:
    seq = [FrameSource(Path(f"s_{n}.exr"), n) for n in range(1, 11)]
    blocks = [plan.shard_block(seq, (i, 3)) for i in range(3)]
    assert [[s.frame for s in b] for b in blocks] == [[1, 2, 3], [4, 5, 6], [7, 8, 9, 10]]
    assert plan.choose(seq[:1] + seq[2:3], PassNames()).reason == "no two consecutive frames"
    assert not plan.choose(seq, PassNames(), enabled=False).use


# --- the temporal benchmark -----------------------------------------------------------------------

def test_flicker_figure_is_the_change_the_reference_does_not_have() -> None:
    """On tonemapped frames (the bench tonemaps once and every figure reads them)."""
    refs = [np.full((4, 4, 3), v, np.float32) for v in (0.1, 0.2, 0.3)]
    from mcdenoise.bench.temporal import flicker

    assert flicker(refs, refs) == [0.0, 0.0]
    shifted = [r + 0.2 for r in refs]  # a steady error is not flicker ...
    wobbly = [r * f for r, f in zip(refs, (1.0, 1.3, 1.0))]  # ... a change between frames is
    steady, jumpy = flicker(shifted, refs), flicker(wobbly, refs)
    expected = np.abs((wobbly[1] - wobbly[0]) - (refs[1] - refs[0])).mean()
    assert np.allclose(steady, 0.0, atol=1e-7) and np.isclose(jumpy[0], expected) and jumpy[0] > 0.05


def test_noise_free_flicker_takes_the_references_noise_out() -> None:
    """Two references with independent noise around a clean moving image: the product
    estimator gives ~0 for the clean image itself (which the one-reference figure charges with
    the reference's noise), and for a wobbling output the same mean square as against the clean
    image; the references' own noise is half the mean square of their difference."""
    from mcdenoise.bench.temporal import flicker_ms, flicker_noise_free

    rng = np.random.default_rng(3)
    h, w = 96, 96
    xx = np.arange(w, dtype=np.float32)[None, :, None]
    clean = [np.broadcast_to(0.3 + 0.2 * np.sin((xx - t) / 3.0), (h, w, 3)).astype(np.float32) for t in range(6)]
    ref_a = [c * rng.normal(1.0, 0.05, c.shape).astype(np.float32) for c in clean]
    ref_b = [c * rng.normal(1.0, 0.05, c.shape).astype(np.float32) for c in clean]
    wobble = [c * (1.0 + 0.04 * ((-1) ** t)) for t, c in enumerate(clean)]
    one_ref = np.mean(flicker_ms(clean, ref_a))
    free = np.mean(flicker_noise_free(clean, ref_a, ref_b))
    assert one_ref > 1e-5 and abs(free) < 0.05 * one_ref  # the clean image: only the reference's noise, taken out
    truth = np.mean(flicker_ms(wobble, clean))
    assert np.isclose(np.mean(flicker_noise_free(wobble, ref_a, ref_b)), truth, rtol=0.1)
    assert np.mean(flicker_ms(wobble, ref_a)) > 1.2 * truth  # one reference: its noise on top
    floor = np.mean(flicker_ms(ref_b, ref_a)) / 2
    assert np.isclose(floor, one_ref, rtol=0.1)


def test_flicker_split_tells_error_that_moves_with_the_surface_from_error_that_changes() -> None:
    """A texture sliding 1 px a frame (and a Vector pass that says so). An output whose error is
    painted on the texture (it slides with it): only 'moving' error, none 'changing'. On a still
    shot, an output whose error is drawn anew every frame: only 'changing'."""
    from mcdenoise.bench.temporal import flicker_split, pair_warps

    h, w, frames = 16, 40, 4
    xx = np.arange(w, dtype=np.float32)[None, :, None]

    def texture(x):
        return 0.4 + 0.2 * np.sin(x / 2.0)

    def stain(x):  # an error fixed to the surface
        return 0.05 * (np.cos(x * 1.3) > 0)

    refs = [np.broadcast_to(texture(xx - t), (h, w, 3)).astype(np.float32) for t in range(frames)]
    sliding = [r + np.broadcast_to(stain(xx - t), (h, w, 3)).astype(np.float32) for t, r in enumerate(refs)]
    moving_vectors = [_vector(h, w, (-1.0, 0.0), (1.0, 0.0)) for _ in range(frames)]
    changing, moving = flicker_split(sliding, refs, pair_warps(moving_vectors))
    assert min(moving) > 0.005 and max(changing) < 0.1 * min(moving)
    still = [np.broadcast_to(texture(xx), (h, w, 3)).astype(np.float32)] * frames
    rng = np.random.default_rng(0)
    noisy = [r * rng.normal(1.0, 0.05, r.shape).astype(np.float32) for r in still]
    changing, moving = flicker_split(noisy, still, pair_warps([_vector(h, w, (0.0, 0.0), (0.0, 0.0))] * frames))
    assert min(changing) > 0.005 and max(moving) < 1e-6


def test_bench_sequence_reports_every_method_on_a_rendered_shot(tmp_path: Path, cli, weights: Path) -> None:
    """A shot in render-suite --shots' layout (written here without Blender): bench --sequence
    scores ours single-frame, ours temporal, both OIDN baselines and a --weights model (frame by
    frame and through the temporal path) on every frame."""
    from mcdenoise.dataset import layout

    root = tmp_path / "shots"
    raw = tmp_path / "raw"
    _write_shot(raw, range(1, 5))
    folder = layout.suite_dir(root, "slide")
    folder.mkdir(parents=True)
    for n in range(1, 5):
        (raw / f"shot_{n:04d}.exr").rename(layout.sequence_noisy_path(root, "slide", 4, n))
    _write_shot(raw, range(1, 5), vector=False)  # stand-in references: their own noise, like few-sample ones
    for n in range(1, 5):
        (raw / f"shot_{n:04d}.exr").rename(layout.sequence_ref_path(root, "slide", n))
    _write_shot(raw, range(1, 5), vector=False, seed=1)  # second references: the same frames, other noise
    for n in range(1, 5):
        (raw / f"shot_{n:04d}.exr").rename(layout.sequence_ref_path(root, "slide", n, second=True))
    layout.suite_desc_path(root, "slide").write_text("{}\n")
    report = tmp_path / "report"
    # --weights: a "tuned" model (here the same file, so its rows must equal ours) frame by frame
    # and through the temporal path, as denoise --weights runs it on a sequence
    code, out, err = cli("bench", "--sequence", root, "--models", weights, "--weights", weights, "--out", report)
    assert code == 0, err
    assert "Flicker, ours temporal / OIDN-Accurate" in out and "PSNR, ours temporal − ours single-frame" in out
    assert "The tuned model through the temporal path" in out
    assert "Without the references' noise" in out and "flicker RMS, noise-free" in out
    import json

    result = json.loads((report / "temporal.json").read_text())
    shot = result["shots"][0]
    assert shot["frames"] == [1, 2, 3, 4]
    tuned = f"tuned ({weights.name})"
    for method in ("ours single-frame", "ours temporal", "OIDN plain", "OIDN-Accurate", tuned, f"{tuned}, temporal"):
        assert len(shot["numbers"][method]["psnr"]) == 4 and len(shot["numbers"][method]["flicker"]) == 3
    n = shot["numbers"]
    assert n["ours single-frame"]["psnr"][0] == n["ours temporal"]["psnr"][0]
    assert len(n["ours temporal"]["flicker_changing"]) == len(n["OIDN-Accurate"]["flicker_moving"]) == 3
    assert "error changing | error moving" in (report / "temporal.md").read_text()
    assert n[f"{tuned}, temporal"]["psnr"] == n["ours temporal"]["psnr"] != n[tuned]["psnr"]
    assert shot["second_reference"] and len(n["OIDN-Accurate"]["flicker_ms_noise_free"]) == 3
    assert len(n["reference"]["flicker_ms"]) == 3 and "noise_free_flicker_temporal_over_oidn_accurate" in shot["headline"]
    gaps = shot["single_frame_gaps"]
    assert gaps["tuned_temporal"] == pytest.approx(float(np.mean(n["ours temporal"]["psnr"])))
    assert gaps["tuned_temporal_flicker_over_oidn_accurate"] == pytest.approx(
        np.mean(n["ours temporal"]["flicker"]) / np.mean(n["OIDN-Accurate"]["flicker"]))
    assert (report / "temporal_slide.png").is_file() and (report / "temporal_slide_plot.png").is_file()


def test_render_suite_shots_renders_numbered_frames_with_vectors_and_resumes(tmp_path: Path, cli) -> None:
    """A real (tiny) render of an animated shot: numbered noisy frames and references, the
    Vector pass showing the motion, the JSON last; a second run finds it done."""
    from mcdenoise.dataset import layout

    root = tmp_path / "shots"
    args = ("render-suite", "--out", root, "--shots", "mixed_dolly", "--frames", "2", "--res", "24", "--spp", "1",
            "--ref-spp", "2", "--threads", "2", "-q")
    code, out, err = cli(*args)
    assert code == 0, err
    assert "1 rendered" in out
    frames = [read_frame(layout.sequence_noisy_path(root, "mixed_dolly", 1, n), features=("vector",)) for n in (1, 2)]
    assert all(f.vector is not None for f in frames)
    assert np.abs(frames[1].vector[..., :2]).mean() > 0.05  # camera and objects move
    assert not np.array_equal(frames[0].color, frames[1].color)  # a new seed and a new view each frame
    assert layout.sequence_ref_path(root, "mixed_dolly", 2).is_file() and layout.suite_desc_path(root, "mixed_dolly").is_file()
    assert plan.choose([FrameSource(layout.sequence_noisy_path(root, "mixed_dolly", 1, n), n) for n in (1, 2)], PassNames()).use
    code, out, _ = cli(*args)
    assert code == 0 and "0 rendered, 1 already done" in out


def test_render_suite_shots_renders_references_only_on_ref_frames(tmp_path: Path, cli) -> None:
    """--ref-frames: every frame noisy, references only on the frames asked for (the ones a
    fine-tune measurement scores), recorded in the JSON; bench --sequence finds exactly those
    frames; a frame outside the shot is refused before anything is rendered."""
    from mcdenoise.bench.temporal import list_shots
    from mcdenoise.dataset import layout

    root = tmp_path / "shots"
    code, _, err = cli("render-suite", "--out", root, "--shots", "metals_orbit", "--frames", "3", "--ref-frames", "2-4",
                       "--res", "16", "--spp", "1", "--ref-spp", "2", "-q")
    assert code != 0 and "1-3" in err and "4" in err and not root.exists()
    code, out, err = cli("render-suite", "--out", root, "--shots", "metals_orbit", "--frames", "3", "--ref-frames", "2-3",
                         "--res", "16", "--spp", "1", "--ref-spp", "2", "--threads", "2", "-q")
    assert code == 0, err
    assert all(layout.sequence_noisy_path(root, "metals_orbit", 1, n).is_file() for n in (1, 2, 3))
    assert [layout.sequence_ref_path(root, "metals_orbit", n).is_file() for n in (1, 2, 3)] == [False, True, True]
    record = json.loads(layout.suite_desc_path(root, "metals_orbit").read_text())
    assert record["render"]["ref_frames"] == [2, 3] and record["render"]["ref2_frames"] == []
    assert dict(list_shots(root, 1))["metals_orbit"] == [2, 3]

    # --ref2-frames on the finished shot: just the second references, at the recorded exposure
    on_disk = {p: p.stat().st_mtime_ns for p in layout.suite_dir(root, "metals_orbit").glob("*.exr")}
    same = ("--out", root, "--shots", "metals_orbit", "--frames", "3", "--spp", "1", "--ref-spp", "2", "--threads", "2",
            "-q")  # no --ref-frames: the shot's first references stay on frames 2-3
    code, _, err = cli("render-suite", *same, "--res", "24", "--ref2-frames", "2-3")
    assert code != 0 and "rendered at 16 px with 3 frames and 2-spp references" in err and "Traceback" not in err
    code, _, err = cli("render-suite", *same, "--res", "16", "--ref2-frames", "2-3")
    assert code == 0, err
    assert {p: p.stat().st_mtime_ns for p in on_disk} == on_disk  # nothing redone
    assert not layout.sequence_ref_path(root, "metals_orbit", 1).exists()  # nor a first reference added
    second = [layout.sequence_ref_path(root, "metals_orbit", n, second=True) for n in (2, 3)]
    assert all(p.is_file() for p in second)
    again = json.loads(layout.suite_desc_path(root, "metals_orbit").read_text())
    assert again["render"]["ref2_frames"] == [2, 3] and again["render"]["exposure"] == record["render"]["exposure"]
    a = read_frame(layout.sequence_ref_path(root, "metals_orbit", 3)).color
    b = read_frame(second[1]).color
    assert not np.array_equal(a, b) and 0.7 < b.mean() / a.mean() < 1.4  # another seed, the same exposure
    code, out, _ = cli("render-suite", *same, "--res", "16", "--ref2-frames", "2-3")
    assert code == 0 and "0 rendered, 1 already done" in out
    code, _, err = cli("render-suite", "--out", root, "--ref2-frames", "2")
    assert code != 0 and "--ref2-frames is for --shots" in err
