"""How ``finetune`` spends its minutes: which frames it renders, how large a window of each, at
how many samples, so that rendering takes its share of the budget and training the rest; and
how many training steps that rest holds (:class:`StepPlan`).

Pure arithmetic on measured costs (two probe renders of the shot give Cycles' seconds per
render and per pixel-sample on this machine; training reports its seconds per step as it goes),
so the policy is tested without Blender or training.

* **Frames**: up to ``TRAIN_FRAMES`` spread evenly over the range, plus one between them held
  aside to check the tuned model against the base one on a frame it never trained on. As many
  frames as the render share holds at windows of ``FRAME_SIDE`` pixels or more come first:
  what carries over to the frames a tune never sees is the shot's other poses and views, and
  a tune on four frames overfits them within minutes (docs/finetune.md has the measurement).
  Only a budget too short for that takes fewer frames and smaller windows.
* **Windows, not a lower resolution** (see ``finetune.shot``): square windows of the full-size
  frame, as large as the render share allows, up to ``MAX_SIDE``; past that, more windows per
  frame at other places in the picture.
* **Targets**: references at ``REF_FACTOR`` times the shot's samples by default, or a second
  independent render at the shot's samples (Noise2Noise), which buys about 8x the pixels for
  the same minutes; ``docs/finetune.md`` has the measurement that picked the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mcdenoise.errors import McDenoiseError

RENDER_SHARE = 0.3  # of the whole budget; the rest trains (and checks the result)
CHECK_SECONDS = 10.0  # kept back for scoring base and tuned model and writing the file
REPORT_SECONDS = 20.0  # training between two progress reports (each with a checkpoint)
TIMING_STEPS = 2  # an untimed job's first report comes after this many steps: a first step time
TRAIN_FRAMES = 12  # at most
FRAME_SIDE = 128  # windows stay this large (or the whole frame) while frames are added
SHORT_BUDGET_FRAMES = 4  # a budget too short for FRAME_SIDE windows starts from this many frames
PAIRS_TRAIN_FRAMES = 8  # given files: whole frames, held in memory while training
MIN_SIDE, MAX_SIDE, GRID = 32, 256, 16  # window sides: multiples of the networks' 16-pixel grid
# The held-aside window is at least this large (the frame's smaller side at most): one 32-pixel
# window scored +0.06 dB for a model that lost 0.97 dB on whole unseen frames (docs/finetune.md).
CHECK_SIDE = 128
MAX_WINDOWS_PER_FRAME = 8  # a frame no larger than a window is rendered again with other seeds
REF_FACTOR, REF_MIN, REF_MAX = 16, 64, 1024
TARGETS = ("ref", "n2n")


@dataclass(frozen=True)
class RenderCost:
    """Cycles on this machine for this shot: seconds per render plus seconds per pixel-sample."""

    overhead: float
    per_sample: float

    def seconds(self, pixels: int, samples: int) -> float:
        return self.overhead + pixels * samples * self.per_sample

    @classmethod
    def from_probes(cls, pixels: int, low: tuple[int, float], high: tuple[int, float]) -> RenderCost:
        """From two renders of one window: ``(samples, seconds)`` at a low and a high count."""
        (s1, t1), (s2, t2) = low, high
        per_sample = max((t2 - t1) / (pixels * (s2 - s1)), 1e-12)
        return cls(max(t1 - pixels * s1 * per_sample, 0.0), per_sample)


@dataclass(frozen=True)
class RenderPlan:
    train_frames: tuple[int, ...]
    held_frame: int
    side: int  # window side in pixels (the whole frame's smaller side at most)
    windows_per_frame: int
    spp: int
    target_spp: int
    seconds: float  # the estimate this plan was sized by
    check_side: int = 0  # side of the held-aside window (0: ``side``, as plans of older runs)
    # Windows a frame added once the planned ones were rendered and timed (``top_up``), or None
    # before that is decided; they are indexed after the planned ones, so a resume finds them.
    extra_per_frame: int | None = None

    @property
    def windows(self) -> int:
        """Training windows in all, the top-up included."""
        return len(self.train_frames) * (self.windows_per_frame + (self.extra_per_frame or 0))

    @property
    def renders(self) -> int:
        return 2 * (self.windows + 1)


def target_samples(spp: int, targets: str) -> int:
    if targets == "n2n":
        return spp
    return max(min(REF_FACTOR * spp, REF_MAX), REF_MIN, 2 * spp)


def pick_frames(frames: list[int], count: int) -> tuple[list[int], int]:
    """``count`` frames spread evenly over ``frames`` (sorted) and one held aside between them."""
    if len(frames) < 2:
        raise McDenoiseError(f"fine-tuning needs at least 2 frames, got {len(frames)}", fix="finetune_frames")
    count = max(1, min(count, len(frames) - 1))
    spots = sorted({frames[round(k * (len(frames) - 1) / count)] for k in range(count + 1)})
    held = spots[len(spots) // 2]
    return [f for f in spots if f != held], held


def check_window_side(width: int, height: int, side: int) -> int:
    return max(side, min(largest_side(width, height), CHECK_SIDE))


def largest_side(width: int, height: int) -> int:
    side = min(width, height, MAX_SIDE)
    return side - side % GRID if side >= GRID else side


def plan_renders(frames: list[int], width: int, height: int, spp: int, cost: RenderCost, budget_s: float,
                 targets: str = "ref", train_frames: int = TRAIN_FRAMES,
                 max_per_frame: int = MAX_WINDOWS_PER_FRAME, spent_s: float = 0.0) -> RenderPlan:
    """The largest plan that fits ``budget_s`` seconds of rendering: as many frames as asked
    (fewer if need be), windows as large as fit, then more windows per frame. ``spent_s``
    (seconds the job has already used) only makes the error's estimate of the minutes needed
    right."""
    target = target_samples(spp, targets)
    top = largest_side(width, height)

    def seconds(n: int, side: int, per_frame: int) -> float:
        pixels, checked = side * side, check_window_side(width, height, side) ** 2
        check = cost.seconds(checked, spp) + cost.seconds(checked, target_samples(spp, "ref"))  # the held-aside frame
        return n * per_frame * (cost.seconds(pixels, spp) + cost.seconds(pixels, target)) + check

    chosen, held = pick_frames(frames, train_frames)
    # First the most frames with windows of FRAME_SIDE or more; a shorter budget then shrinks
    # windows down to MIN_SIDE for at most SHORT_BUDGET_FRAMES frames, then drops frames.
    for least, most in ((min(FRAME_SIDE, top), len(chosen)), (min(MIN_SIDE, top), min(len(chosen), SHORT_BUDGET_FRAMES))):
        for n in range(most, 0, -1):
            picked, held = pick_frames(frames, n)
            side = top
            while side > least and seconds(len(picked), side, 1) > budget_s:
                side -= GRID
            if seconds(len(picked), side, 1) > budget_s:
                continue
            per_frame = 1
            while side == top and per_frame < max_per_frame and seconds(len(picked), side, per_frame + 1) <= budget_s:
                per_frame += 1
            return RenderPlan(tuple(picked), held, side, per_frame, spp, target, seconds(len(picked), side, per_frame),
                              check_window_side(width, height, side))
    need = (spent_s + seconds(1, min(MIN_SIDE, top), 1)) / RENDER_SHARE + CHECK_SECONDS
    raise McDenoiseError(f"{budget_s / 60:.1f} minutes of rendering cannot render even one {min(MIN_SIDE, top)}-pixel window "
                         f"of 2 frames at {spp} and {target} samples on this machine (about {need / 60:.1f} minutes "
                         "in all are needed)", fix="finetune_minutes", need_minutes=math.ceil(need / 60))


def top_up(plan: RenderPlan, window_seconds: float, left_s: float, max_per_frame: int = MAX_WINDOWS_PER_FRAME) -> int:
    """Windows a frame to add to ``plan`` once its windows have been rendered: as many rounds
    (one more window of each training frame) as ``left_s`` seconds of the render share hold at
    the ``window_seconds`` a window (noisy side and target) really took, up to ``max_per_frame``
    windows a frame in all. The plan was sized from a probe of a small window, which can be off
    by several times either way (Cycles' per-render cost is not linear in pixels); once real
    windows are timed, the share is spent as planned instead of left to training."""
    room = max_per_frame - plan.windows_per_frame
    if room <= 0 or window_seconds <= 0 or left_s <= 0:
        return 0
    return min(room, int(left_s // (len(plan.train_frames) * window_seconds)))


def halton(index: int, base: int) -> float:
    """The ``index``-th point of the van der Corput sequence in ``base``: evenly spread in [0, 1)."""
    f, r = 1.0, 0.0
    while index > 0:
        f /= base
        r += f * (index % base)
        index //= base
    return r


def windows(width: int, height: int, side: int, count: int, start: int = 1) -> list[tuple[int, int, int, int]]:
    """``count`` windows (x0, y0, x1, y1) of ``side`` pixels spread over the frame by a Halton
    sequence from ``start``; the frame itself when it is no larger than a window."""
    w, h = min(side, width), min(side, height)
    out = []
    for k in range(start, start + count):
        x0 = round(halton(k, 2) * (width - w))
        y0 = round(halton(k, 3) * (height - h))
        out.append((x0, y0, x0 + w, y0 + h))
    return out


def centre_window(width: int, height: int, side: int) -> tuple[int, int, int, int]:
    w, h = min(side, width), min(side, height)
    x0, y0 = (width - w) // 2, (height - h) // 2
    return (x0, y0, x0 + w, y0 + h)


@dataclass
class StepPlan:
    """How many training steps fit the minutes, refitted at each progress report from the
    seconds a step has taken. The schedule's length (``steps``) is fixed at the second report
    (the first one's time carries the start-up) and from then on only shortens, when steps run
    slower than planned; until it is fixed, training heads for a provisional length."""

    step_seconds: float | None = None  # wall seconds a step, as measured: what the budget pays
    steps: int | None = None  # the schedule's length, once fixed
    reports: int = 0
    cap: int = 0  # at most this many steps (0: as many as the minutes allow)

    def target(self, step: int, left: float, warmup: int) -> int:
        """The step to train up to, at ``step`` with ``left`` seconds of training left: the fixed
        length, else the steps the measured time fits, else (nothing measured) a few steps, as
        many as fit inside a ``warmup`` whose rates do not depend on the length."""
        if self.steps is not None:
            target = self.steps
        elif self.step_seconds is None:
            target = max(step + TIMING_STEPS, warmup + 1)
        else:
            target = step + int(left / self.step_seconds)
        return min(target, self.cap) if self.cap else target

    def report_due(self, since_report: float, steps_since: int, at_target: bool = False) -> bool:
        """Whether a report is due ``since_report`` seconds and ``steps_since`` steps after the
        last one (or the start of training): after the first steps of a job not timed yet, then
        every ``REPORT_SECONDS``; and whenever training is ``at_target`` before the length is
        fixed, since a provisional end is no place to stop: the report fits it anew."""
        if self.steps is None and at_target and steps_since > 0:
            return True
        if self.step_seconds is None:
            return steps_since >= TIMING_STEPS
        return since_report >= REPORT_SECONDS and steps_since > 0

    def measured(self, step: int, seconds: float, steps_done: int, left: float) -> None:
        """A report at ``step``: ``steps_done`` steps took ``seconds``, and ``left`` seconds of
        training are left. The first two reports replace the estimate, later ones average in."""
        if steps_done > 0:
            measured = seconds / steps_done
            self.step_seconds = (measured if self.reports < 2 or self.step_seconds is None
                                 else 0.5 * self.step_seconds + 0.5 * measured)
            self.reports += 1
        if self.steps is None and self.reports >= 2:
            self.steps = step + int(left / self.step_seconds)
        self.refit(step, left)

    def refit(self, step: int, left: float) -> None:
        """Shorten the fixed length for good when the steps left would take more than ``left``
        seconds (with a tenth to spare), and keep it to the cap."""
        if self.steps is not None and self.step_seconds is not None and (self.steps - step) * self.step_seconds > 1.1 * left:
            self.steps = step + int(left / self.step_seconds)
        if self.steps is not None and self.cap:
            self.steps = min(self.steps, self.cap)
