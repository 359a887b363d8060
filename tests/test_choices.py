"""The tables of choices (``mcdenoise.choices``): every verb offers exactly the table's values,
the flag types read values the way the library does, and the one shard rule serves both
``render-dataset`` and ``denoise``."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from mcdenoise import choices
from mcdenoise.batch.sequence import FrameSource, select_shard
from mcdenoise.cli import build_parser
from mcdenoise.cli.argtypes import names, torch_device
from mcdenoise.dataset.render import select_indices


def _option(argv: list[str], flag: str) -> argparse.Action:
    parser = build_parser(argv)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[argv[0]]
    return next(a for a in sub._actions if flag in a.option_strings)


@pytest.mark.parametrize("verb,flag,table", [
    ("denoise", "--quality", choices.QUALITIES),
    ("denoise", "--precision", choices.PRECISIONS),
    ("train", "--arch", choices.ARCHITECTURES),
    ("train", "--quality", tuple(choices.UNET_WIDTHS)),
    ("render-dataset", "--render-device", choices.CYCLES_DEVICES),
    ("render-suite", "--render-device", choices.CYCLES_DEVICES),
    ("bench", "--precision", choices.PRECISIONS),
    ("bench", "--device", choices.TORCH_DEVICES),
])
def test_each_verb_offers_the_table(verb, flag, table):
    assert tuple(_option([verb], flag).choices) == table


def test_defaults_come_from_the_table():
    args = build_parser(["denoise", "x.exr"]).parse_args(["denoise", "x.exr"])
    assert (args.device, args.precision, args.quality) == (choices.DEFAULT_DEVICE, choices.DEFAULT_PRECISION, None)
    args = build_parser(["bench"]).parse_args(["bench"])
    assert args.quality == list(choices.QUALITIES) and args.device == choices.DEFAULT_DEVICE


def test_device_flag_reads_what_the_loader_accepts():
    for text in ("auto", "cpu", "cuda", "CPU", "cuda:1", "mps", "xpu", "xpu:1"):
        assert torch_device(text) == text  # kept as written: training records it in its config
    for text in ("gpu", "cuda:x", "cpu:0", "auto:1", "mps:0", "rocm", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="auto, cpu, cuda, mps or xpu"):
            torch_device(text)


def test_name_lists():
    parse = names(choices.QUALITIES, "quality")
    assert parse("high, fast") == ["high", "fast"] and parse("") == []
    with pytest.raises(argparse.ArgumentTypeError, match="unknown quality 'ultra'; use fast, balanced, high"):
        parse("fast,ultra")


def test_bad_choice_is_a_usage_error_before_any_work(tmp_path):
    run = subprocess.run([sys.executable, "-m", "mcdenoise", "denoise", str(tmp_path / "missing.exr"), "--device", "gpu"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 2 and "argument --device: unknown device 'gpu'" in run.stderr


def test_one_shard_rule_for_scenes_and_frames():
    """Shards are disjoint and cover everything; frames of a list and scene indices from 0 are
    split the same way, so a farm's shard i/n means one thing in both verbs."""
    frames = [FrameSource(Path(f"f{k}.exr"), k) for k in range(11)]
    for n in (1, 2, 3, 5):
        parts = [[s.frame for s in select_shard(frames, (i, n))] for i in range(n)]
        assert parts == [select_indices(0, 11, (i, n)) for i in range(n)]
        assert sorted(k for part in parts for k in part) == list(range(11))
