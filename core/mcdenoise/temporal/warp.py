"""Bringing the previous frame into the current one with Blender's ``Vector`` pass.

Cycles writes four components per pixel, in pixels, with Y pointing up (Blender's raster
space, bottom row first). What they hold was measured on a real render (a cube moving right
and up, ``tests/test_temporal.py``), not taken from the manual's wording:

* ``X, Y`` = where the surface seen in this pixel was in the *previous* frame, minus where it
  is now (``motion_pre - centre`` in Cycles' kernel): the motion *to* the previous frame.
* ``Z, W`` = where it is now minus where it will be in the *next* frame (``centre -
  motion_post``): the motion to the next frame with its sign *flipped*.

Arrays here are EXR rows top to bottom, so a displacement in array coordinates (column, row)
is ``(X, -Y)`` to the previous frame and ``(-Z, W)`` to the next one.

Warping is backward: each pixel of the current frame fetches, bilinearly, the previous frame at
the place its surface came from. Where that fetch is meaningless the validity mask says so:
the place is outside the previous frame, or the previous frame's own to-next motion at that
place does not lead back here (forward-backward check), which is what a surface uncovered
this frame (a disocclusion) looks like: what the previous frame showed there was something
else, moving differently.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Forward-backward check: a round trip may miss its start by this many pixels plus this share
# of the motion's length (long motions are less precise in half floats and at edges).
FB_PIXELS = 0.75
FB_SHARE = 0.05


def _as_tensor(a: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.float()
    return torch.from_numpy(np.asarray(a, dtype=np.float32))


def flow_to_previous(vector: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(H, W, 2) displacement in array coordinates (column, row) from each pixel to where its
    surface was in the previous frame. Non-finite vectors (a broken pass) read as no motion."""
    v = _as_tensor(vector).nan_to_num(0.0, 0.0, 0.0)
    return torch.stack((v[..., 0], -v[..., 1]), dim=-1)


def flow_to_next(vector: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(H, W, 2) displacement in array coordinates from each pixel to where its surface will be
    in the next frame (Blender stores it negated in Z, W)."""
    v = _as_tensor(vector).nan_to_num(0.0, 0.0, 0.0)
    return torch.stack((-v[..., 2], v[..., 3]), dim=-1)


def sample_points(flow: torch.Tensor) -> torch.Tensor:
    """Absolute (column, row) sample positions ``pixel + flow`` for an (H, W, 2) flow."""
    h, w = flow.shape[:2]
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack((cols, rows), dim=-1) + flow


def inside(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(H, W) bool: sample positions within the frame (pixel centres span 0 .. size-1; half a
    pixel past the outermost centre still lies on the outermost pixel)."""
    x, y = points[..., 0], points[..., 1]
    return (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)


def sample(image: np.ndarray | torch.Tensor, points: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Bilinear (or ``mode="bicubic"``) fetch of an (H', W', C) image (array or tensor) at
    (H, W, 2) absolute (column, row) positions; positions past the border read the border (the
    validity mask drops them anyway)."""
    h, w = image.shape[:2]
    grid = torch.empty_like(points)
    grid[..., 0] = points[..., 0] * (2.0 / max(w - 1, 1)) - 1.0
    grid[..., 1] = points[..., 1] * (2.0 / max(h - 1, 1)) - 1.0
    x = _as_tensor(image).permute(2, 0, 1)[None]
    out = F.grid_sample(x, grid[None], mode=mode, padding_mode="border", align_corners=True)
    return out[0].permute(1, 2, 0)


def sample_sharp(image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bicubic fetch (as :func:`sample`) limited to the range of the 2x2 pixels around each
    position: bicubic's sharpness without its ringing, the overshoot next to an edge that,
    carried from frame to frame, would build a halo."""
    x = image.float()
    c = x.shape[-1]
    x = torch.cat((x, x[-1:]), dim=0)
    x = torch.cat((x, x[:, -1:]), dim=1)  # edges replicated: the last row and column see themselves
    pairs = (torch.minimum(x[:-1], x[1:]), torch.maximum(x[:-1], x[1:]))
    bounds = torch.cat((torch.minimum(pairs[0][:, :-1], pairs[0][:, 1:]),
                        torch.maximum(pairs[1][:, :-1], pairs[1][:, 1:])), dim=-1)  # (H, W, 2C): 2x2 min, max
    h, w = image.shape[:2]
    col = points[..., 0].floor().clamp(0, w - 1).long()
    row = points[..., 1].floor().clamp(0, h - 1).long()
    low_high = bounds.reshape(h * w, 2 * c).index_select(0, (row * w + col).reshape(-1)).reshape(*points.shape[:-1], 2 * c)
    cubic = sample(image, points, "bicubic")
    return torch.minimum(torch.maximum(cubic, low_high[..., :c]), low_high[..., c:])


def backward_warp(previous: np.ndarray | torch.Tensor, vector: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The previous frame ``previous`` (H, W, C) seen from the current frame, whose Vector pass
    is ``vector`` (H, W, 4); returns (warped (H, W, C), inside-the-frame mask (H, W))."""
    prev = _as_tensor(previous)
    points = sample_points(flow_to_previous(vector))
    return sample(prev, points), inside(points, *prev.shape[:2])


def validity(vector: np.ndarray | torch.Tensor, previous_vector: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the previous frame can be trusted in the current one: (sample positions (H, W, 2),
    valid mask (H, W) bool).

    Valid = the position the current pixel came from is inside the previous frame, and the
    previous frame's motion to the next frame at that position leads back to this pixel
    (within ``FB_PIXELS + FB_SHARE * |motion|``).
    """
    back = flow_to_previous(vector)
    points = sample_points(back)
    h, w = back.shape[:2]
    forward = sample(flow_to_next(previous_vector), points)  # previous frame's motion at the fetched spot
    miss = (back + forward).norm(dim=-1)
    ok = miss <= FB_PIXELS + FB_SHARE * back.norm(dim=-1)
    return points, inside(points, h, w) & ok
