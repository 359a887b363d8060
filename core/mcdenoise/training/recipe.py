"""A recipe: everything that makes one shipped weights file, in order, from a fresh clone.

A shipped model has to be rebuildable without the command lines that made it, or nobody can
check it, retrain it on more data or reproduce a regression. A recipe is a TOML file
(``recipes/*.toml``) that names the datasets to render (``render-dataset`` arguments) and the
training stages (``TrainConfig`` fields; a stage may start from the previous stage's weights),
and the weights file it ships as. :func:`run` carries it out:

1. render every dataset, in chunks of scene indices, each chunk a separate ``render-dataset``
   process (Blender processes stay short-lived and a crash is retried without stalling the rest);
2. train each stage in its own run folder, then export the stage's weights;
3. copy the last stage's weights to the recipe's output, with the recipe's name in the metadata.

Every step is resumable: ``render-dataset`` skips finished scenes, a stage resumes from its
newest checkpoint, and a stage whose weights were exported after its last step is not touched
again. So a killed run loses at most the scene being rendered and a few minutes of training, and
re-running the same command continues it. A time budget (``minutes``) stops the call at a
checkpoint with everything kept, which is how a 2-core CPU gets through a recipe in sessions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

from mcdenoise.choices import DEFAULT_CYCLES_DEVICE, DEFAULT_DECODER
from mcdenoise.dataset import layout as scene_layout
from mcdenoise.errors import McDenoiseError
from mcdenoise.training.config import FIELD_NAMES, TrainConfig

# TrainConfig fields a recipe may not set: the recipe decides where data and runs live.
_OWNED_BY_RECIPE = {"data", "run_dir", "init", "minutes", "progress"}
RENDER_CHUNK = 25  # scenes per render-dataset process
RENDER_TRIES = 3


@dataclass(frozen=True)
class Dataset:
    """One ``render-dataset`` call's arguments, split into chunks of scene indices when run."""

    name: str
    scenes: int
    start: int = 0
    seed_offset: int = 0
    res: int = 256
    spp: tuple[int, ...] = (1, 2, 4, 8, 16)
    ref_spp: int = 128

    def args(self, out: Path, start: int, count: int) -> list[str]:
        return ["--out", str(out), "--start", str(start), "--scenes", str(count), "--seed-offset", str(self.seed_offset),
                "--res", str(self.res), "--spp", ",".join(map(str, self.spp)), "--ref-spp", str(self.ref_spp)]


@dataclass(frozen=True)
class Stage:
    """One training run. ``init`` is ``"previous"`` (the stage before's weights), a weights path
    relative to the repository, or empty (from scratch). ``prefilter``: the stage trains behind
    the recipe's aux prefilter (later stages that start from it keep it through their init)."""

    name: str
    data: str
    init: str = ""
    train: dict[str, Any] = field(default_factory=dict)
    prefilter: bool = False


@dataclass(frozen=True)
class Prefilter:
    """The recipe's aux prefilter (``[prefilter]``, ``training.prefilter``): trained on a dataset
    after the datasets are rendered and before any stage that asks for it."""

    data: str
    settings: dict[str, Any] = field(default_factory=dict)  # PrefilterConfig fields


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    weights: str  # file name the recipe ships as, e.g. default.pt
    datasets: tuple[Dataset, ...]
    stages: tuple[Stage, ...]
    prefilter: Prefilter | None = None

    def dataset(self, name: str) -> Dataset:
        return next(d for d in self.datasets if d.name == name)


def _fail(path: Path, where: str, problem: str) -> McDenoiseError:
    return McDenoiseError(f"recipe {path}: {where}: {problem}")


def _typed(path: Path, where: str, cls: type, values: dict[str, Any]) -> Any:
    """Build a dataclass from a TOML table, naming the unknown key or the wrong type."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise _fail(path, where, f"unknown keys {unknown}; known: {', '.join(known)}")
    try:
        if "spp" in values:
            values = {**values, "spp": tuple(int(v) for v in values["spp"])}
        return cls(**values)
    except TypeError as exc:
        raise _fail(path, where, str(exc)) from None


def load_recipe(path: str | Path) -> Recipe:
    """Parse and check a recipe file; every mistake is reported before anything runs (a typo
    found after an hour of rendering costs the hour)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise McDenoiseError(f"recipe {path}: no such file; the shipped recipes are in recipes/") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise McDenoiseError(f"recipe {path}: cannot read it ({exc})") from None
    for key in ("name", "weights", "dataset", "stage"):
        if key not in raw:
            raise _fail(path, "top level", f"missing '{key}'")
    unknown = sorted(set(raw) - {"name", "weights", "dataset", "stage", "train", "prefilter"})
    if unknown:
        raise _fail(path, "top level", f"unknown keys {unknown}")
    datasets = tuple(_typed(path, f"[dataset.{name}]", Dataset, {"name": name, **table})
                     for name, table in raw["dataset"].items())
    prefilter = _prefilter(path, raw["prefilter"], datasets) if "prefilter" in raw else None
    common = dict(raw.get("train", {}))
    stages = []
    for i, table in enumerate(raw["stage"]):
        where = f"[[stage]] #{i + 1}"
        table = dict(table)
        head = {k: table.pop(k) for k in ("name", "data", "init", "prefilter") if k in table}
        if "name" not in head or "data" not in head:
            raise _fail(path, where, "needs 'name' and 'data'")
        settings = {**common, **table}
        bad = sorted(set(settings) - set(FIELD_NAMES))
        if bad:
            raise _fail(path, where, f"unknown training settings {bad}; known: {', '.join(sorted(set(FIELD_NAMES) - _OWNED_BY_RECIPE))}")
        owned = sorted(set(settings) & _OWNED_BY_RECIPE)
        if owned:
            raise _fail(path, where, f"{owned} are set by the recipe runner, not the recipe")
        if head["data"] not in {d.name for d in datasets}:
            raise _fail(path, where, f"data '{head['data']}' is not one of the datasets ({', '.join(d.name for d in datasets)})")
        if head.get("init") == "previous" and i == 0:
            raise _fail(path, where, "the first stage has no previous stage to start from")
        if not isinstance(head.get("prefilter", False), bool):
            raise _fail(path, where, "prefilter = true or false: whether the stage trains behind the recipe's [prefilter]")
        if head.get("prefilter") and prefilter is None:
            raise _fail(path, where, "prefilter = true, but the recipe has no [prefilter] table")
        try:
            TrainConfig(**settings).model_kwargs()  # the same check train() makes, an hour earlier
        except TypeError as exc:
            raise _fail(path, where, str(exc)) from None
        except McDenoiseError as exc:
            raise _fail(path, where, str(exc)) from None
        stages.append(Stage(head["name"], head["data"], head.get("init", ""), settings, head.get("prefilter", False)))
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise _fail(path, "[[stage]]", f"stage names must be unique, got {names}")
    return Recipe(str(raw["name"]), path, str(raw["weights"]), datasets, tuple(stages), prefilter)


def _prefilter(path: Path, table: Any, datasets: tuple[Dataset, ...]) -> Prefilter:
    from mcdenoise.training.prefilter import FIELD_NAMES as PREFILTER_FIELDS

    where = "[prefilter]"
    table = dict(table) if isinstance(table, dict) else {}
    data = table.pop("data", None)
    if data not in {d.name for d in datasets}:
        raise _fail(path, where, f"data {data!r} is not one of the datasets ({', '.join(d.name for d in datasets)})")
    allowed = PREFILTER_FIELDS - {"data", "run_dir", "minutes", "progress"}
    bad = sorted(set(table) - allowed)
    if bad:
        raise _fail(path, where, f"unknown settings {bad}; known: {', '.join(sorted(allowed))}")
    return Prefilter(data, table)


# -- running -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """Where a recipe's files go (all of it outside git). Datasets live under a root shared by
    every recipe (``data/train`` is the same folder for all of them: rendering it is the costly
    part), run folders and stage weights under the recipe's own work folder."""

    work: Path
    data_root: Path = Path("data")

    def data(self, name: str) -> Path:
        return self.data_root / name

    def run(self, stage: str) -> Path:
        return self.work / "runs" / stage

    def stage_weights(self, stage: str) -> Path:
        return self.run(stage) / "stage.pt"

    @property
    def prefilter_weights(self) -> Path:
        """The recipe's aux prefilter, written beside the shipped default colour model (the
        stages take only the prefilter from it)."""
        return self.run("prefilter") / "prefilter.pt"


def render_command(dataset: Dataset, out: Path, start: int, count: int, render_device: str) -> list[str]:
    return [sys.executable, "-m", "mcdenoise", "render-dataset", *dataset.args(out, start, count),
            "--render-device", render_device, "--quiet"]


def render_dataset(dataset: Dataset, out: Path, render_device: str, deadline: float,
                   log: Callable[[str], None], runner: Callable[[list[str]], int] | None = None) -> bool:
    """Render the dataset's scene indices chunk by chunk; False if the budget ran out first."""
    runner = runner or (lambda cmd: subprocess.run(cmd, check=False).returncode)
    end = dataset.start + dataset.scenes
    for start in range(dataset.start, end, RENDER_CHUNK):
        count = min(RENDER_CHUNK, end - start)
        if all(scene_layout.is_done(out, i) for i in range(start, start + count)):
            continue
        if time.monotonic() >= deadline:
            return False
        log(f"recipe: dataset {dataset.name}: rendering scenes {start}..{start + count - 1} into {out}")
        for attempt in range(1, RENDER_TRIES + 1):
            rc = runner(render_command(dataset, out, start, count, render_device))
            if rc == 0:
                break
            if rc in (130, 143):  # interrupted by the user or a scheduler: stop, don't retry
                raise KeyboardInterrupt
            log(f"recipe: render-dataset failed (exit {rc}, try {attempt}/{RENDER_TRIES})")
        else:
            raise McDenoiseError(f"recipe: dataset {dataset.name}: render-dataset failed {RENDER_TRIES} times on scenes "
                                 f"{start}..{start + count - 1}; see its messages above")
    return True


def stage_config(recipe: Recipe, stage: Stage, layout: Layout, overrides: dict[str, Any]) -> TrainConfig:
    init = ""
    if stage.init == "previous":
        previous = recipe.stages[recipe.stages.index(stage) - 1]
        init = str(layout.stage_weights(previous.name))
    elif stage.init:
        init = stage.init
    return TrainConfig(**{**stage.train, **overrides, "data": str(layout.data(stage.data)),
                          "run_dir": str(layout.run(stage.name)), "init": init,
                          "prefilter": str(layout.prefilter_weights) if stage.prefilter else ""})


def prefilter_config(recipe: Recipe, layout: Layout, overrides: dict[str, Any]):
    from mcdenoise.training.prefilter import PrefilterConfig

    assert recipe.prefilter is not None
    values = {**recipe.prefilter.settings, **overrides, "data": str(layout.data(recipe.prefilter.data)),
              "run_dir": str(layout.run("prefilter"))}
    if "widths" in values:
        values["widths"] = tuple(values["widths"])
    return PrefilterConfig(**values)


def prefilter_done(layout: Layout, steps: int) -> bool:
    """The prefilter is done when its file was written after its last step."""
    from mcdenoise.models.loader import load_model

    path = layout.prefilter_weights
    if not path.is_file():
        return False
    try:
        return int(load_model(path).meta.get("aux_prefilter", {}).get("steps", -1)) >= steps
    except McDenoiseError:
        return False


def stage_done(layout: Layout, stage: Stage, steps: int) -> bool:
    """A stage is done when its weights were exported after its last step."""
    from mcdenoise.models.loader import load_model

    path = layout.stage_weights(stage.name)
    if not path.is_file():
        return False
    try:
        return int(load_model(path).meta.get("steps", -1)) >= steps
    except McDenoiseError:
        return False  # a damaged export is redone from the run's checkpoint


def describe(recipe: Recipe, layout: Layout) -> list[str]:
    """Where each step of the recipe stands, for ``--dry-run`` and the start of a run."""
    from mcdenoise.training.checkpoint import latest_checkpoint

    lines = [f"recipe {recipe.name} ({recipe.path}) -> {recipe.weights}"]
    for d in recipe.datasets:
        done = sum(scene_layout.is_done(layout.data(d.name), i) for i in range(d.start, d.start + d.scenes))
        lines.append(f"  dataset {d.name}: {done}/{d.scenes} scenes rendered in {layout.data(d.name)} "
                     f"({d.res} px, {','.join(map(str, d.spp))} spp, reference {d.ref_spp} spp)")
    if recipe.prefilter is not None:
        cfg = prefilter_config(recipe, layout, {})
        if prefilter_done(layout, cfg.steps):
            state = "done"
        else:
            latest = latest_checkpoint(cfg.run_dir)
            state = f"checkpoint {latest.name}" if latest else "not started"
        lines.append(f"  aux prefilter: unet {list(cfg.widths)}, {cfg.steps} steps, batch {cfg.batch} x {cfg.crop} px, "
                     f"on {recipe.prefilter.data}: {state}")
    for stage in recipe.stages:
        cfg = stage_config(recipe, stage, layout, {})
        if stage_done(layout, stage, cfg.steps):
            state = "done"
        else:
            latest = latest_checkpoint(cfg.run_dir)
            state = f"checkpoint {latest.name}" if latest else "not started"
        model = (f"unet {cfg.widths}" + (f", {cfg.decoder} decoder" if cfg.decoder != DEFAULT_DECODER else "")
                 if cfg.arch == "unet" else cfg.arch)
        lines.append(f"  stage {stage.name}: {model}, {cfg.steps} steps, "
                     f"batch {cfg.batch} x {cfg.crop} px, lr {cfg.lr:g}, on {stage.data}"
                     + (f", from {'the previous stage' if stage.init == 'previous' else stage.init}" if stage.init else "")
                     + f": {state}")
    return lines


def run(recipe: Recipe, work: str | Path, *, data_root: str | Path = "data", out: str | Path | None = None, minutes: float = 0.0,
        device: str | None = None, render_device: str = DEFAULT_CYCLES_DEVICE, only: str = "all", progress: bool = True,
        log: Callable[[str], None] = print, runner: Callable[[list[str]], int] | None = None) -> Path | None:
    """Carry the recipe out as far as ``minutes`` allows (0 = to the end). Returns the shipped
    weights' path when the last stage is done, ``None`` when the budget ran out first (re-run
    to continue)."""
    from mcdenoise.training.loop import export, train

    layout = Layout(Path(work), Path(data_root))
    deadline = time.monotonic() + minutes * 60 if minutes else float("inf")
    if only in ("all", "data"):
        for dataset in recipe.datasets:
            if not render_dataset(dataset, layout.data(dataset.name), render_device, deadline, log, runner):
                log("recipe: time budget spent while rendering; re-run the same command to continue")
                return None
        if only == "data":
            return None
    if recipe.prefilter is not None and not _run_prefilter(recipe, layout, deadline, progress, log):
        return None
    overrides = {"progress": progress, **({"device": device} if device else {})}
    for stage in recipe.stages:
        cfg = stage_config(recipe, stage, layout, overrides)
        if stage_done(layout, stage, cfg.steps):
            continue
        cfg = _budgeted(cfg, deadline, log)
        if cfg is None:
            return None
        log(f"recipe: stage {stage.name}: {cfg.steps} steps on {cfg.data}"
            + (f", from {cfg.init}" if cfg.init else ", from scratch"))
        summary = train(cfg)
        if summary["step"] < cfg.steps:
            log(f"recipe: stage {stage.name} stopped at step {summary['step']}/{cfg.steps} with a checkpoint; "
                "re-run the same command to continue")
            return None
        export(cfg.run_dir, layout.stage_weights(stage.name),
               extra={"recipe": recipe.name, "stage": stage.name})
    final = layout.stage_weights(recipe.stages[-1].name)
    target = Path(out) if out else layout.work / recipe.weights
    if final.resolve() != target.resolve():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(final, tmp)
        os.replace(tmp, target)
    log(f"recipe: {recipe.name} done: {target}")
    return target


def _run_prefilter(recipe: Recipe, layout: Layout, deadline: float, progress: bool, log: Callable[[str], None]) -> bool:
    """Train the recipe's aux prefilter (resumably) and write it; False if the budget ran out first."""
    from mcdenoise.models.loader import DEFAULT_WEIGHTS
    from mcdenoise.training import prefilter as prefilter_training

    cfg = prefilter_config(recipe, layout, {"progress": progress})
    if prefilter_done(layout, cfg.steps):
        return True
    cfg = _budgeted(cfg, deadline, log)
    if cfg is None:
        return False
    log(f"recipe: aux prefilter: {cfg.steps} steps on {cfg.data}")
    summary = prefilter_training.train(cfg, log=log)
    if summary["step"] < cfg.steps:
        log(f"recipe: the aux prefilter stopped at step {summary['step']}/{cfg.steps} with a checkpoint; "
            "re-run the same command to continue")
        return False
    prefilter_training.export(cfg.run_dir, DEFAULT_WEIGHTS, layout.prefilter_weights)
    return True


def _budgeted(cfg: Any, deadline: float, log: Callable[[str], None]) -> Any:
    """A run's config limited to the time left (its ``minutes``), or None, saying how to go on,
    when none is left."""
    left = deadline - time.monotonic()
    if left <= 0:
        log("recipe: time budget spent; re-run the same command to continue")
        return None
    return replace(cfg, minutes=left / 60) if left != float("inf") else cfg
