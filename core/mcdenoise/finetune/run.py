"""The fine-tuning run: pairs (rendered from the shot, or given as files), a few minutes of
training from a shipped model, a check on a frame held aside, and a weights file.

``finetune_shot`` and ``finetune_pairs`` are what the CLI (``mcdenoise finetune``) and the
Blender add-on call. The whole job keeps to ``minutes``, rendering included:

1. **Render** (shot only): two probe renders measure Cycles on this machine, then
   ``budget.plan_renders`` sizes frames and windows to ``budget.RENDER_SHARE`` of the budget.
   A probe of a small window can misprice a real one several times over, so once the planned
   windows are rendered and timed, ``budget.top_up`` adds windows to every frame with what is
   left of the share (decided once, recorded in the plan, indexed after the planned windows).
   Then each frame's targets are pooled where its windows overlap (``finetune.targets``).
2. **Train** with the project's training loop (``training.loop.train``, fine-tuning from the
   tier's shipped weights), in one run of it: about every ``budget.REPORT_SECONDS`` its
   ``on_step`` hook fits the schedule's length to the minutes left from the step time measured
   so far (``budget.StepPlan``), reports progress and has a checkpoint taken.
3. **Check**: the base and the tuned model denoise the held-aside frame, each as it will run
   (the base as its quality runs it, the tuned one averaged over ``rotations(opts)``
   flips/rotations); the tuned one is written only if it scores higher there (PSNR against
   its target), else the base model is, and the file's metadata says which and why.

Everything lives in a work folder beside the output (``shot.finetune/`` for ``shot.pt``): the
renders in the dataset layout (``dataset.layout``), the training run (checkpoints), and
``state.json`` (the plan, the minutes spent, the base score). Running the same command again
after a kill continues where it stopped, with the minutes that were left.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mcdenoise.choices import DEFAULT_QUALITY, UNET_DECODERS, UNET_WIDTHS, decoder_config
from mcdenoise.dataset import layout
from mcdenoise.errors import McDenoiseError, OutputError
from mcdenoise.finetune import budget, targets
from mcdenoise.io.atomic import atomic_output

STATE_VERSION = 1
PROBE_SIDE = 32
WARMUP_STEPS = 10
# A tuned model runs averaged over this many flips/rotations, as the shipped ``balanced`` and
# ``high`` do: on metals_orbit's unseen frames they added 0.40-0.44 dB to a tuned default, 0.50
# on mixed_dolly's (8 rotations: 0.05 more for twice the time), for 4x the denoising time of
# one pass (docs/finetune.md).
ROTATIONS = 4
MIN_GAIN_DB = 0.1  # the tuned model is kept only if it beats the base one by this much on the held-aside frame


@dataclass
class Options:
    """What a fine-tuning job may be asked; the defaults are the CLI's."""

    frames: list[int] | None = None  # shot only: None = the scene's whole range
    minutes: float = 10.0
    quality: str = DEFAULT_QUALITY  # the shipped model to start from
    spp: int | None = None  # shot only: None = the shot's own sample count
    targets: str = "ref"  # budget.TARGETS
    render_device: str = "cpu"
    device: str = "auto"  # where the network trains
    threads: int = 0  # CPU threads for Cycles and torch, 0 = their defaults
    # A shot's tune is short (hundreds to a few thousand steps): on metals_orbit (875 steps) peak
    # rates of 5e-4 / 1e-3 / 2e-3 scored 31.65 / 31.76 / 31.91 dB on unseen frames, and with
    # pooled targets 2e-3 / 4e-3 scored 31.91 / 31.85 (docs/finetune.md).
    lr: float = 2e-3
    batch: int = 8
    crop: int = 128
    seed: int = 0
    train_frames: int = budget.TRAIN_FRAMES  # shot only: frames rendered for training (fewer if the budget is short)
    windows_per_frame: int = budget.MAX_WINDOWS_PER_FRAME  # shot only: at most this many windows of a frame
    max_steps: int = 0  # cap on the training steps, 0 = as many as the minutes allow
    # Flips/rotations the tuned model is averaged over when it runs (and when it is checked);
    # None: ROTATIONS, or the base quality's own count if that is more (``high``).
    rotations: int | None = None
    stop_after_steps: int = 0  # stop this call after that many training steps (resumable), 0 = never
    # Start over when the work folder holds a finished job or another job's work, instead of
    # reporting the recorded result or refusing (the add-on's button: each click tunes anew,
    # and resumes only a stopped job of the same settings).
    restart: bool = False


@dataclass(frozen=True)
class Update:
    """One progress report: ``phase`` is render, train or check; ``eta`` in seconds."""

    phase: str
    done: int
    total: int
    eta: float
    text: str


@dataclass
class Result:
    output: Path
    finished: bool  # False: stopped early; the same call again resumes
    kept: str = ""  # "tuned" or "base"
    held_frame: int | None = None
    base_psnr: float | None = None
    tuned_psnr: float | None = None
    steps: int = 0
    spent_seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def gain_db(self) -> float | None:
        return None if self.base_psnr is None or self.tuned_psnr is None else self.tuned_psnr - self.base_psnr


OnUpdate = Callable[[Update], None]


def work_dir(output: str | Path) -> Path:
    """The work folder of a job writing ``output``: ``shot.finetune/`` beside ``shot.pt``."""
    output = Path(output)
    return output.parent / f"{output.stem}.finetune"


# -- state: what a resumed call needs ------------------------------------------------------------

class Job:
    """The work folder's ``state.json`` and the budget's clock across calls."""

    def __init__(self, output: Path, identity: dict[str, Any], minutes: float, restart: bool = False):
        self.output = output
        self.dir = work_dir(output)
        self.path = self.dir / "state.json"
        self.budget = minutes * 60
        self.started = time.monotonic()
        if not output.parent.is_dir():
            raise OutputError(f"{output.parent}: folder does not exist", fix="out_dir_create")
        self.dir.mkdir(exist_ok=True)
        state = json.loads(self.path.read_text()) if self.path.is_file() else {}
        if state and restart and (state.get("result") or state.get("version") != STATE_VERSION
                                  or state.get("job") != identity):
            self.clear()
            state = {}
        if state and (state.get("version") != STATE_VERSION or state.get("job") != identity):
            raise McDenoiseError(f"{self.dir} holds the work of another fine-tuning job ({state.get('job')})",
                                 fix="finetune_work", work=self.dir)
        self.state = state or {"version": STATE_VERSION, "job": identity, "spent": 0.0}
        self.spent_before = float(self.state["spent"])

    @property
    def spent(self) -> float:
        return self.spent_before + time.monotonic() - self.started

    @property
    def left(self) -> float:
        return self.budget - self.spent

    def clear(self) -> None:
        """Remove what a job wrote here (state, renders, training run); other files stay."""
        import shutil

        self.path.unlink(missing_ok=True)
        (self.dir / "probe.exr").unlink(missing_ok=True)
        for folder in (self.train_root, self.pooled_root, targets.staging(self.pooled_root), self.held_root, self.run_dir):
            shutil.rmtree(folder, ignore_errors=True)

    def save(self) -> None:
        self.state["spent"] = round(self.spent, 3)
        with atomic_output(self.path) as tmp:
            tmp.write_text(json.dumps(self.state, indent=1) + "\n")

    @property
    def train_root(self) -> Path:
        return self.dir / "train"

    @property
    def pooled_root(self) -> Path:
        """The training windows with their frame's targets pooled (``finetune.targets``)."""
        return self.dir / "pooled"

    @property
    def held_root(self) -> Path:
        return self.dir / "holdout"

    @property
    def run_dir(self) -> Path:
        return self.dir / "run"


def _say(on_update: OnUpdate | None, update: Update) -> None:
    if on_update is not None:
        on_update(update)


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


# -- the shot: render pairs ----------------------------------------------------------------------

def finetune_shot(blend: str | Path, output: str | Path, options: Options | None = None,
                  on_update: OnUpdate | None = None) -> Result:
    """Fine-tune on a .blend's own frames (see the module's docstring); needs bpy."""
    from mcdenoise.finetune import shot as shot_mod

    opts = options or Options()
    output = Path(output)
    blend = shot_mod.check_blend(blend).resolve()
    base = _load_base(opts.quality)
    identity = {"source": str(blend), "frames": opts.frames, "quality": opts.quality, "spp": opts.spp,
                "targets": opts.targets}
    # Everything the shot can be refused for is checked before the work folder is made.
    scene, shot = shot_mod.open_shot(blend, opts.frames)
    frames = opts.frames or list(range(shot.frame_start, shot.frame_end + 1))
    budget.pick_frames(frames, opts.train_frames)
    spp = opts.spp or shot.spp
    job = Job(output, identity, opts.minutes, opts.restart)
    if job.state.get("result"):
        return _recorded(job)
    try:
        shot_mod.prepare(scene, shot, opts.render_device, opts.threads)
        if "plan" not in job.state:
            cost = _probe(scene, shot, spp, job)
            plan = budget.plan_renders(frames, shot.width, shot.height, spp, cost,
                                       budget.RENDER_SHARE * job.budget - job.spent, opts.targets,
                                       opts.train_frames, opts.windows_per_frame, job.spent)
            job.state["plan"] = {**asdict(plan), "cost": asdict(cost)}
            job.save()
        plan = budget.RenderPlan(**{k: v for k, v in job.state["plan"].items() if k != "cost"})
        _render(scene, shot, plan, job, on_update)
        if plan.extra_per_frame is None:  # decided once, and recorded before anything it adds is rendered
            plan = replace(plan, extra_per_frame=budget.top_up(plan, _window_seconds(job, plan),
                                                               budget.RENDER_SHARE * job.budget - job.spent,
                                                               opts.windows_per_frame))
            job.state["plan"]["extra_per_frame"] = plan.extra_per_frame
            job.save()
            _render(scene, shot, plan, job, on_update)
        pooled = targets.pool(job.train_root, job.pooled_root)
        meta = {"shot": blend.name, "scene": shot.scene, "camera": shot.camera, "frames": list(plan.train_frames),
                "held_aside_frame": plan.held_frame, "spp": spp, "targets": opts.targets, "target_spp": plan.target_spp,
                "window": plan.side, "windows": plan.windows, "targets_per_pixel": pooled["targets_per_pixel"],
                "blender": shot.blender}
        return _tune(job, base, opts, plan.held_frame, meta, on_update, job.pooled_root)
    finally:
        job.save()


def _probe(scene: Any, shot: Any, spp: int, job: Job) -> budget.RenderCost:
    """Time two renders of a small window (after one that warms Cycles up) at two sample counts."""
    from mcdenoise.finetune import shot as shot_mod

    window = budget.centre_window(shot.width, shot.height, PROBE_SIDE)
    pixels = (window[2] - window[0]) * (window[3] - window[1])
    frame = shot.frame_start
    probe = job.dir / "probe.exr"
    timings = []
    try:
        for samples in (1, spp, 4 * spp):
            t = time.perf_counter()
            shot_mod.render_window(scene, shot, frame, window, samples, shot.seed(frame, f"probe{samples}"), probe)
            timings.append((samples, time.perf_counter() - t))
    finally:
        probe.unlink(missing_ok=True)
    return budget.RenderCost.from_probes(pixels, timings[1], timings[2])


def _train_windows(shot: Any, plan: budget.RenderPlan) -> list[tuple[int, int, tuple[int, int, int, int]]]:
    """``(index, frame, window)`` of each training window: the planned ones frame by frame, then
    the top-up's rounds (one more window of every frame each), indexed after them so that the
    indices of a plan's windows never change when it is topped up. Window ``index`` sits at the
    Halton point ``1 + index``: every window elsewhere in the frame, and with seeds of its own."""
    n, per = len(plan.train_frames), plan.windows_per_frame
    slots = [(i * per + k, frame) for i, frame in enumerate(plan.train_frames) for k in range(per)]
    slots += [(n * per + e * n + i, frame) for e in range(plan.extra_per_frame or 0) for i, frame in enumerate(plan.train_frames)]
    return [(index, frame, budget.windows(shot.width, shot.height, plan.side, 1, start=1 + index)[0]) for index, frame in slots]


def _window_seconds(job: Job, plan: budget.RenderPlan) -> float:
    """Mean seconds a training window (noisy side and target) took, as its record says."""
    seconds = [json.loads(layout.desc_path(job.train_root, i).read_text())["seconds"]
               for i in range(len(plan.train_frames) * plan.windows_per_frame)]
    return sum(seconds) / len(seconds)


def _render(scene: Any, shot: Any, plan: budget.RenderPlan, job: Job, on_update: OnUpdate | None) -> None:
    """Every window of the plan not on disk yet: noisy side, then target, then the JSON marker."""
    from mcdenoise.finetune import shot as shot_mod

    jobs = [(job.train_root, index, frame, w) for index, frame, w in _train_windows(shot, plan)]  # (root, index, frame, window)
    jobs.append((job.held_root, 0, plan.held_frame, budget.centre_window(shot.width, shot.height, plan.check_side or plan.side)))
    todo = [j for j in jobs if not layout.is_done(j[0], j[1])]
    started = time.monotonic()
    for n, (root, index, frame, window) in enumerate(todo, start=1):
        layout.scene_dir(root, index).mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        # The held-aside frame is checked against a reference whatever the training targets are.
        target = plan.target_spp if root == job.train_root else budget.target_samples(plan.spp, "ref")
        noisy_seed, target_seed = shot.seed(frame, f"noisy:{index}"), shot.seed(frame, f"target:{index}")
        shot_mod.render_window(scene, shot, frame, window, plan.spp, noisy_seed, layout.noisy_path(root, index, plan.spp))
        shot_mod.render_window(scene, shot, frame, window, target, target_seed, layout.ref_path(root, index),
                               reference=target > plan.spp)
        record = {"frame": frame, "window": list(window), "spp": plan.spp, "target_spp": target,
                  "seeds": {"noisy": noisy_seed, "target": target_seed}, "seconds": round(time.perf_counter() - t, 3),
                  "shot": shot.path.name, "scene": shot.scene, "blender": shot.blender}
        with atomic_output(layout.desc_path(root, index)) as tmp:
            tmp.write_text(json.dumps(record, indent=1) + "\n")
        job.save()
        per = (time.monotonic() - started) / n
        _say(on_update, Update("render", len(jobs) - len(todo) + n, len(jobs), max(job.left, 0.0),
                               f"rendered frame {frame} window {window[0]},{window[1]} ({len(jobs) - len(todo) + n}/{len(jobs)}), "
                               f"{per:.1f} s each, {_clock(job.left)} of the budget left"))


# -- files: stage pairs --------------------------------------------------------------------------

def finetune_pairs(noisy_dir: str | Path, refs_dir: str | Path, output: str | Path, options: Options | None = None,
                   on_update: OnUpdate | None = None) -> Result:
    """Fine-tune on existing renders matched by frame number (``finetune.pairs``): up to
    ``budget.PAIRS_TRAIN_FRAMES`` frames spread over them train, one between them is held aside."""
    from mcdenoise.finetune import pairs as pairs_mod

    opts = options or Options()
    output = Path(output)
    pairs = pairs_mod.match_pairs(noisy_dir, refs_dir)
    frames = [p.frame for p in pairs]
    train_frames, held = budget.pick_frames(frames, budget.PAIRS_TRAIN_FRAMES)
    base = _load_base(opts.quality)
    identity = {"source": [str(Path(noisy_dir).resolve()), str(Path(refs_dir).resolve())], "frames": frames,
                "quality": opts.quality}
    job = Job(output, identity, opts.minutes, opts.restart)
    if job.state.get("result"):
        return _recorded(job)
    try:
        by_frame = {p.frame: p for p in pairs}
        for index, frame in enumerate(train_frames):
            pairs_mod.stage_pair(job.train_root, index, by_frame[frame])
        pairs_mod.stage_pair(job.held_root, 0, by_frame[held])
        meta = {"shot": f"{Path(noisy_dir).name} + {Path(refs_dir).name}", "frames": train_frames,
                "held_aside_frame": held, "targets": "files"}
        return _tune(job, base, opts, held, meta, on_update, job.train_root)
    finally:
        job.save()


# -- training, the check, the file ---------------------------------------------------------------

def rotations(opts: Options) -> int:
    """How many flips/rotations the tuned model runs (and is checked) averaged over."""
    from mcdenoise.models.tiers import ensemble_size

    return opts.rotations if opts.rotations is not None else max(ROTATIONS, ensemble_size(opts.quality))


def _as_shipped(base: Any, quality: str) -> Any:
    """The base model as ``--quality`` runs it (``high``: averaged over its rotations): what a
    tune must beat, and what the file holds when tuning did not help."""
    from mcdenoise.models.tiers import ensemble_size, with_ensemble

    return with_ensemble(base, ensemble_size(quality))


def _load_base(quality: str):
    from mcdenoise.models.loader import load_model
    from mcdenoise.models.tiers import load_quality, weights_path

    load_quality(quality)  # refuses a quality whose weights are not shipped, saying which are
    return load_model(weights_path(quality))


def _train_config(job: Job, base: Any, opts: Options, steps: int, minutes: float, data: Path):
    from mcdenoise.training.config import FIELD_NAMES, TrainConfig

    if base.arch != "unet":
        raise McDenoiseError(f"{base.path}: fine-tuning starts from a U-Net, not {base.arch}", fix="quality_shipped")
    row = next((k for k, v in UNET_WIDTHS.items() if list(v) == list(base.config["widths"])), None)
    if row is None:
        raise McDenoiseError(f"{base.path}: widths {base.config['widths']} match no U-Net row", fix="quality_shipped")
    decoder = next((k for k in UNET_DECODERS if decoder_config(base.config["widths"], k)
                    == {key: base.config[key] for key in ("decoder", "input_skip") if key in base.config}), None)
    if decoder is None:
        raise McDenoiseError(f"{base.path}: decoder {base.config.get('decoder')} matches no U-Net decoder row", fix="quality_shipped")
    values = {
        "data": str(data), "run_dir": str(job.run_dir), "arch": base.arch, "widths": row, "decoder": decoder, "inputs": base.inputs,
        "demodulate": bool(base.config.get("demodulate", False)), "steps": steps, "minutes": minutes / 60,
        "batch": opts.batch, "crop": opts.crop, "lr": opts.lr, "warmup": WARMUP_STEPS, "aux_dropout": 0.0,
        "val_fraction": 0.0, "val_every": 0, "log_every": 10, "checkpoint_minutes": 1e6, "keep_checkpoints": 2,
        "reload_minutes": 0.0, "seed": opts.seed, "threads": opts.threads, "device": opts.device,
        "init": str(base.path), "progress": False,
        # The loss where the held-aside check and the benchmarks score: on metals_orbit (10 min)
        # it scored 31.72 dB on unseen frames against 31.32 in log space (docs/finetune.md).
        "loss_space": "display",
    }
    if values["demodulate"] and "demodulate" not in FIELD_NAMES:
        raise McDenoiseError(f"{base.path}: a demodulating model, which this training code cannot train")
    return TrainConfig(**{k: v for k, v in values.items() if k in FIELD_NAMES})


def _held_entry(job: Job) -> layout.SceneEntry:
    entries = layout.list_scenes(job.held_root)
    if not entries:
        raise McDenoiseError(f"{job.held_root}: the held-aside frame is missing; delete {job.dir} to start over",
                             fix="finetune_work", work=job.dir)
    return entries[0]


def score(loaded: Any, entry: layout.SceneEntry) -> float:
    """PSNR (tonemapped, as ``bench`` and training validation score) of ``loaded`` denoising the
    held-aside frame against its target, through the inference path users run."""
    import numpy as np

    from mcdenoise import hdr
    from mcdenoise.inference.denoise import denoise_frame
    from mcdenoise.inference.runtime import Runtime
    from mcdenoise.metrics import psnr_tonemapped
    from mcdenoise.training.data import load_scene

    data = load_scene(entry, loaded.inputs)
    spp = min(data.noisy)
    runtime = Runtime.for_model(loaded.model)
    tile = runtime.tile_for(loaded.model, data.noisy[spp])
    out = denoise_frame(loaded, data.noisy[spp], tile, exposure=data.exposure[spp], runtime=runtime)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverged network scores NaN, and is not kept
        psnr = psnr_tonemapped(out, data.ref, hdr.autoexposure(data.ref))
    return float(psnr)  # a NumPy scalar would not load weights-only


def _tuned_model(job: Job, base: Any):
    from mcdenoise.models.loader import LoadedModel
    from mcdenoise.training import checkpoint
    from mcdenoise.training.loop import checkpoint_model

    latest = checkpoint.latest_checkpoint(job.run_dir)
    if latest is None:
        return None
    ck = checkpoint.load_checkpoint(latest)
    # Trained behind the base's aux prefilter (training.loop.prefilter_source: the init's), so it keeps it.
    return LoadedModel(checkpoint_model(ck), ck["arch"], ck["model_kwargs"], base.inputs, prefilter=base.prefilter), int(ck["step"])


def _tune(job: Job, base: Any, opts: Options, held: int, meta: dict[str, Any], on_update: OnUpdate | None,
          data: Path) -> Result:
    """Train on ``data`` (the rendered windows, their targets pooled) within the budget, then check."""
    import torch

    from mcdenoise.training.loop import Ask, StepDone, train

    if opts.threads > 0:
        torch.set_num_threads(opts.threads)
    entry = _held_entry(job)
    if "base_psnr" not in job.state:
        job.state["base_psnr"] = score(_as_shipped(base, opts.quality), entry)
        job.save()
    st = job.state
    plan = budget.StepPlan(st.get("step_seconds"), st.get("steps"), st.get("reports", 0), opts.max_steps)
    step, left = st.get("step", 0), job.left - budget.CHECK_SECONDS
    plan.refit(step, left)
    target = plan.target(step, left, WARMUP_STEPS)
    last = [time.monotonic(), step]  # the last report's time and step (the first: where training starts)

    def report(at: int) -> int:
        """Measure, save the state, say how far training is; the step to train up to now."""
        now, left = time.monotonic(), job.left - budget.CHECK_SECONDS
        plan.measured(at, now - last[0], at - last[1], left)
        last[:] = [now, at]
        total = max(plan.target(at, left, WARMUP_STEPS), at)  # at: no step fits what is left
        st.update(step=at, steps=plan.steps, step_seconds=plan.step_seconds, reports=plan.reports)
        job.save()
        eta = min((total - at) * plan.step_seconds + budget.CHECK_SECONDS, max(job.left, 0.0))
        _say(on_update, Update("train", at, total, eta, f"step {at}/{total}, {plan.step_seconds:.2f} s/step, ETA {_clock(eta)}"))
        return total

    def on_step(done: StepDone) -> Ask | None:
        if job.left - budget.CHECK_SECONDS <= 0:
            return Ask(stop=True)  # the minutes are spent: on to the check, with what is trained
        if not plan.report_due(time.monotonic() - last[0], done.step - last[1], done.step >= done.steps):
            return None
        return Ask(checkpoint=True, steps=report(done.step))

    stopped = False
    if left > 0 and target > step:
        summary = train(_train_config(job, base, opts, target, left, data), stop_after=opts.stop_after_steps, on_step=on_step)
        step = summary["step"]
        # SIGTERM, or this call's step count: resumable. The budget or the schedule's end: done.
        stopped = summary["stopped"] in ("signal", "stop_after")
        if not stopped and step > last[1]:
            report(step)  # the last steps' line
        st.update(step=step, steps=plan.steps, step_seconds=plan.step_seconds, reports=plan.reports)
        job.save()
    if stopped:
        return Result(job.output, False, held_frame=held, base_psnr=st["base_psnr"], steps=step, spent_seconds=job.spent)
    return _finish(job, base, opts, held, meta, on_update)


def _finish(job: Job, base: Any, opts: Options, held: int, meta: dict[str, Any], on_update: OnUpdate | None) -> Result:
    from mcdenoise.models.loader import ENSEMBLE_META, save_weights
    from mcdenoise.models.tiers import with_ensemble

    st = job.state
    tuned = _tuned_model(job, base)
    base_psnr = float(st["base_psnr"])
    n, entry = rotations(opts), _held_entry(job)
    tuned_psnr, step = (score(with_ensemble(tuned[0], n), entry), tuned[1]) if tuned else (None, 0)
    helped = tuned_psnr is not None and tuned_psnr > base_psnr + MIN_GAIN_DB  # False for a NaN score (diverged) too
    kept = "tuned" if helped else "base"
    meta = {**meta, "base_quality": opts.quality, "minutes": opts.minutes, "spent_minutes": round(job.spent / 60, 2),
            "steps": step, "lr": opts.lr, "base_psnr": round(base_psnr, 3),
            "tuned_psnr": None if tuned_psnr is None else round(tuned_psnr, 3),
            "validation_gain_db": None if tuned_psnr is None else round(tuned_psnr - base_psnr, 3), "kept": kept,
            # what one pass (a quarter of the time of four rotations) scores, for an artist who needs speed
            "tuned_psnr_one_pass": round(score(tuned[0], entry), 3) if helped and n > 1 else None,
            "finetune": "tuned on the shot" if helped else "tuning did not beat the base model on the held-aside frame; "
                        "this is the base model"}
    model = with_ensemble(tuned[0], n) if helped else _as_shipped(base, opts.quality)  # the file runs as it was checked
    meta[ENSEMBLE_META] = model.meta.get(ENSEMBLE_META)  # what save_weights records for a wrapped model
    meta = {k: v for k, v in meta.items() if v is not None and not (isinstance(v, float) and not math.isfinite(v))}
    save_weights(job.output, model.model, model.arch, model.config, model.inputs, meta, prefilter=model.prefilter)
    result = Result(job.output, True, kept, held, base_psnr, tuned_psnr, step, job.spent, meta)
    st["result"] = {"kept": kept, "held_frame": held, "base_psnr": base_psnr, "tuned_psnr": tuned_psnr, "steps": step,
                    "spent_seconds": round(job.spent, 3), "meta": meta}
    _say(on_update, Update("check", 1, 1, 0.0, f"frame {held}: base {base_psnr:.2f} dB, tuned "
                           + (f"{tuned_psnr:.2f} dB" if tuned_psnr is not None else "not trained")))
    return result


def _recorded(job: Job) -> Result:
    """A job that finished before: its result as recorded (the weights file is already written)."""
    r = job.state["result"]
    if not job.output.is_file():
        raise McDenoiseError(f"{job.dir} records a finished job but {job.output} is gone; delete {job.dir} to start over",
                             fix="finetune_work", work=job.dir)
    return Result(job.output, True, r["kept"], r["held_frame"], r["base_psnr"], r["tuned_psnr"], r["steps"],
                  r["spent_seconds"], r["meta"])


__all__ = ["Options", "Result", "Update", "finetune_pairs", "finetune_shot", "score", "work_dir"]
