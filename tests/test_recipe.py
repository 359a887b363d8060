"""Recipes (``mcdenoise recipe``): the shipped recipes parse and check, mistakes are named before
anything runs, and a toy recipe renders with real Cycles, trains two chained stages, stops on
its budget and continues to the same weights file when re-run."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mcdenoise.dataset.layout import list_scenes
from mcdenoise.errors import McDenoiseError
from mcdenoise.models.loader import load_model
from mcdenoise.training import recipe as recipe_mod
from mcdenoise.training.checkpoint import load_checkpoint, latest_checkpoint

REPO = Path(__file__).resolve().parents[1]
needs_bpy = pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="needs the render extra (bpy)")

TOY = """
name = "toy"
weights = "toy.pt"

[dataset.tiny]
scenes = 2
res = 32
spp = [1, 2]
ref_spp = 4

[train]
arch = "unet"
widths = "fast"
batch = 2
crop = 32
warmup = 1
val_every = 0
log_every = 1
threads = 1
device = "cpu"
val_fraction = 0.0

[[stage]]
name = "first"
data = "tiny"
steps = 3
lr = 1e-3

[[stage]]
name = "second"
data = "tiny"
init = "previous"
steps = 2
lr = 5e-4
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["balanced", "high", "fast", "dncnn"])
def test_shipped_recipes_parse_and_name_the_shipped_weights(name):
    recipe = recipe_mod.load_recipe(REPO / "recipes" / f"{name}.toml")
    assert (REPO / "core" / "mcdenoise" / "weights" / recipe.weights).is_file()
    assert recipe.stages and all(s.data in {d.name for d in recipe.datasets} for s in recipe.stages)


def test_the_wide_decoder_candidate_recipe_grows_the_shipped_default(tmp_path):
    """recipes/wide.toml (not shipped): its first stage starts from the shipped default and every
    stage trains the balanced U-Net with the wide decoder on the shipped recipes' last-stage settings."""
    recipe = recipe_mod.load_recipe(REPO / "recipes" / "wide.toml")
    assert not (REPO / "core" / "mcdenoise" / "weights" / recipe.weights).exists()  # a candidate: no quality loads it
    layout = recipe_mod.Layout(tmp_path)
    configs = [recipe_mod.stage_config(recipe, stage, layout, {}) for stage in recipe.stages]
    assert (REPO / configs[0].init).is_file() and all(s.init == "previous" for s in recipe.stages[1:])
    for cfg in configs:
        kwargs = cfg.model_kwargs()
        assert kwargs["decoder"] == [64, 64, 48, 48, 64, 64, 64, 32] and kwargs["input_skip"]
        assert (cfg.widths, cfg.inputs, cfg.loss_space, cfg.converged) == ("balanced", "color+albedo+normal+samples", "display", 0.25)


@pytest.mark.parametrize("edit, message", [
    (("steps = 3\n", "steps = 3\nbogus = 1\n"), "unknown training settings ['bogus']"),
    (('data = "tiny"\nsteps = 3', 'data = "nope"\nsteps = 3'), "data 'nope' is not one of the datasets"),
    (('name = "first"\n', 'name = "first"\ninit = "previous"\n'), "the first stage has no previous stage"),
    (("threads = 1\n", "threads = 1\nrun_dir = \"x\"\n"), "set by the recipe runner"),
    (('widths = "fast"', 'widths = "huge"'), "widths 'huge': unknown"),
    (("steps = 3\n", "steps = 3\nloss_space = \"linear\"\n"), "loss_space 'linear': unknown"),
    (("ref_spp = 4\n", "ref_spp = 4\nsamples = 9\n"), "unknown keys ['samples']"),
    (('name = "second"', 'name = "first"'), "stage names must be unique"),
])
def test_mistakes_are_named_before_anything_runs(tmp_path, edit, message):
    with pytest.raises(McDenoiseError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        recipe_mod.load_recipe(_write(tmp_path, TOY.replace(*edit, 1)))
    assert str(tmp_path / "r.toml") in str(info.value)


def test_missing_and_broken_files_are_reported(tmp_path):
    with pytest.raises(McDenoiseError, match="no such file"):
        recipe_mod.load_recipe(tmp_path / "missing.toml")
    with pytest.raises(McDenoiseError, match="cannot read it"):
        recipe_mod.load_recipe(_write(tmp_path, "name = [unclosed"))
    proc = subprocess.run([sys.executable, "-m", "mcdenoise", "recipe", str(tmp_path / "missing.toml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "no such file" in proc.stderr and "Traceback" not in proc.stderr


@needs_bpy
def test_toy_recipe_renders_trains_chained_stages_and_resumes(tmp_path):
    path = _write(tmp_path, TOY)
    recipe = recipe_mod.load_recipe(path)
    work, data = tmp_path / "work", tmp_path / "data"
    layout = recipe_mod.Layout(work, data)
    logs: list[str] = []

    # A budget spent before training starts: the data is rendered, nothing is trained yet.
    assert recipe_mod.run(recipe, work, data_root=data, only="data", progress=False, log=logs.append) is None
    assert [e.index for e in list_scenes(data / "tiny")] == [0, 1]

    # Budget runs out at once: no weights, nothing half-written, and the call says how to go on.
    assert recipe_mod.run(recipe, work, data_root=data, minutes=1e-6, progress=False, log=logs.append) is None
    assert "re-run the same command" in logs[-1]
    assert not layout.stage_weights("first").exists()

    # Re-running goes to the end: stage two starts from stage one's exported weights.
    out = recipe_mod.run(recipe, work, data_root=data, progress=False, log=logs.append)
    assert out == work / "toy.pt"
    second = load_checkpoint(latest_checkpoint(layout.run("second")))
    assert second["config"]["init"] == str(layout.stage_weights("first"))
    shipped = load_model(out)
    assert shipped.meta["recipe"] == "toy" and shipped.meta["stage"] == "second" and shipped.meta["steps"] == 2
    first = load_model(layout.stage_weights("first"))
    assert first.meta["steps"] == 3
    assert any(not torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), shipped.model.state_dict().values()))

    # Finished: a re-run renders and trains nothing and writes the same file.
    before = out.read_bytes()
    calls: list[list[str]] = []
    assert recipe_mod.run(recipe, work, data_root=data, progress=False, log=logs.append,
                          runner=lambda cmd: calls.append(cmd) or 0) == out
    assert calls == [] and out.read_bytes() == before
    dry = subprocess.run([sys.executable, "-m", "mcdenoise", "recipe", str(path), "--work", str(work),
                          "--data-root", str(data), "--dry-run"], capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "dataset tiny: 2/2 scenes rendered" in dry.stdout and "stage second: unet fast, 2 steps" in dry.stdout
    assert dry.stdout.count(": done") == 2


def test_a_recipe_trains_its_aux_prefilter_before_the_stages_that_use_it(tmp_path):
    """``[prefilter]`` is trained after the datasets and before the stages; a stage with
    ``prefilter = true`` trains behind it, the next one keeps it through its init, and the
    shipped file carries it. (The dataset is already rendered: its scenes are found done.)"""
    from test_prefilter import _aux_dataset

    data = tmp_path / "data"
    _aux_dataset(data / "tiny", scenes=2, spps=(1, 2))
    text = TOY.replace('name = "first"\n', 'name = "first"\nprefilter = true\n', 1).replace(
        "[[stage]]", '[prefilter]\ndata = "tiny"\nsteps = 3\nbatch = 2\ncrop = 32\nwidths = [4, 4, 4, 4, 4]\n'
        'threads = 1\nval_fraction = 0.0\n\n[[stage]]', 1)
    recipe = recipe_mod.load_recipe(_write(tmp_path, text))
    assert recipe.prefilter is not None and [s.prefilter for s in recipe.stages] == [True, False]
    work = tmp_path / "work"
    layout = recipe_mod.Layout(work, data)
    calls: list[list[str]] = []
    out = recipe_mod.run(recipe, work, data_root=data, progress=False, log=lambda m: None, runner=lambda c: calls.append(c) or 0)
    assert calls == [] and out == work / "toy.pt"
    pre = load_model(layout.prefilter_weights)
    assert pre.meta["aux_prefilter"]["steps"] == 3
    shipped = load_model(out)
    assert shipped.prefilter is not None and shipped.meta["aux_prefilter"]["steps"] == 3
    for k, v in pre.prefilter.state_dict().items():
        assert torch.equal(v, shipped.prefilter.state_dict()[k])
    assert "  aux prefilter: unet [4, 4, 4, 4, 4], 3 steps, batch 2 x 32 px, on tiny: done" in recipe_mod.describe(recipe, layout)

    for bad, message in (('prefilter = true\n', "prefilter = true, but the recipe has no"),):
        with pytest.raises(McDenoiseError, match=message):
            recipe_mod.load_recipe(_write(tmp_path, TOY.replace('name = "first"\n', 'name = "first"\n' + bad, 1)))
    with pytest.raises(McDenoiseError, match=r"\[prefilter\]: unknown settings \['bogus'\]"):
        recipe_mod.load_recipe(_write(tmp_path, text.replace("crop = 32\nwidths", "crop = 32\nbogus = 1\nwidths", 1)))
