"""One vocabulary across verbs (docs/cli.md): every verb's parser is walked, a concept has one
spelling wherever it appears, the spellings it replaced still parse to the same value with a
deprecation note, and ``denoise`` tells a newcomer why it did what it did (skipped a frame, went
colour-only, ran bf16 slowly, which model/passes/device/tile it used)."""

from __future__ import annotations

import argparse
import re

import pytest

from batch_fixtures import make_tiny_weights
from exr_fixtures import write_blender_like
from mcdenoise.cli import VERBS, build_parser


def verb_parser(verb: str) -> argparse.ArgumentParser:
    parser = build_parser([verb])
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[verb]


def visible_options(verb: str) -> list[argparse.Action]:
    """The options ``--help`` shows (hidden aliases left out)."""
    return [a for a in verb_parser(verb)._actions if a.option_strings and a.help is not argparse.SUPPRESS
            and not isinstance(a, argparse._HelpAction)]


# concept -> (pattern that finds an option naming it, the spellings allowed). Qualified names are
# other concepts on purpose: --render-device is Cycles', --oidn-quality OIDN's tiers,
# --cpu-precision/--gpu-precision the precisions bench --speed times per device.
CONCEPTS = {
    "device": (r"device", {"--device", "--render-device"}),
    "model size": (r"qualit|width|tier", {"--quality", "--oidn-quality"}),
    "precision": (r"precision", {"--precision", "--cpu-precision", "--gpu-precision"}),
    "quiet": (r"quiet|progress|silent", {"-q", "--quiet"}),
    "verbose": (r"verbose", {"-v", "--verbose"}),
    "output": (r"^--out|-dir$|report", {"--out", "-o", "--output"}),
}


def test_one_spelling_per_concept_in_every_verb():
    wrong = []
    for verb in VERBS:
        for action in visible_options(verb):
            for flag in action.option_strings:
                for concept, (pattern, allowed) in CONCEPTS.items():
                    if re.search(pattern, flag) and flag not in allowed:
                        wrong.append(f"{verb} {flag} names {concept}; use {sorted(allowed)}")
    assert not wrong, "\n".join(wrong)


def test_a_shared_spelling_means_one_thing():
    """The same flag in two verbs keeps its shape: --out is a folder (DIR), -o/--output a file,
    --device a torch device everywhere it is shown, -q/-v short forms wherever the long one is."""
    seen: dict[str, set[str]] = {}
    for verb in VERBS:
        for action in visible_options(verb):
            flags = set(action.option_strings)
            if "--out" in flags:
                assert action.metavar == "DIR", verb
            if "--output" in flags:
                assert flags == {"-o", "--output"} and action.metavar == "FILE", verb
            if "--quiet" in flags:
                assert flags == {"-q", "--quiet"}, verb
            if "--verbose" in flags:
                assert flags == {"-v", "--verbose"}, verb
            if "--device" in flags:
                assert action.choices is not None or action.type.__name__ == "torch_device", verb
                assert "gpu" not in (action.choices or ()), f"{verb} --device must be a torch device"
            for flag in flags:
                seen.setdefault(flag, set()).add(verb)
    # The verbs that show progress all take --quiet; every verb that writes a folder takes --out.
    assert {"denoise", "train", "render-dataset", "render-suite"} <= seen["--quiet"]
    assert {"denoise", "train", "render-dataset", "render-suite", "bench", "compare"} <= seen["--out"]


# (argv with the old spelling, the same with the new one, dest): both parse to one value.
RENAMED = [
    (["denoise", "x.exr", "--out-dir", "d"], ["denoise", "x.exr", "--out", "d"], "out_dir"),
    (["train", "--run-dir", "runs/a"], ["train", "--out", "runs/a"], "run_dir"),
    (["train", "--widths", "high"], ["train", "--quality", "high"], "widths"),
    (["train", "--no-progress"], ["train", "--quiet"], "progress"),
    (["render-dataset", "--out", "d", "--scenes", "1", "--device", "gpu"],
     ["render-dataset", "--out", "d", "--scenes", "1", "--render-device", "gpu"], "render_device"),
    (["render-dataset", "--out", "d", "--scenes", "1", "--no-progress"],
     ["render-dataset", "--out", "d", "--scenes", "1", "-q"], "quiet"),
    (["render-suite", "--device", "gpu"], ["render-suite", "--render-device", "gpu"], "render_device"),
    (["render-suite", "--no-progress"], ["render-suite", "--quiet"], "quiet"),
    (["bench", "--report", "r"], ["bench", "--out", "r"], "report"),
    (["bench", "--devices", "cpu"], ["bench", "--device", "cpu"], "device"),
    (["bench", "--model-precision", "bf16"], ["bench", "--precision", "bf16"], "precision"),
    (["bench", "--qualities", "fast,high"], ["bench", "--quality", "fast,high"], "quality"),
    (["bench", "--oidn-qualities", "fast"], ["bench", "--oidn-quality", "fast"], "oidn_quality"),
    (["bench", "--precisions", "fp16"], ["bench", "--gpu-precision", "fp16"], "gpu_precision"),
    (["bench", "--cpu-precisions", "bf16"], ["bench", "--cpu-precision", "bf16"], "cpu_precision"),
    (["compare", "a.exr", "--ref", "r.exr", "--images", "d"], ["compare", "a.exr", "--ref", "r.exr", "--out", "d"], "images"),
]


@pytest.mark.parametrize("old,new,dest", RENAMED, ids=[f"{o[0]} {n[-2] if n[-1] != '-q' else '-q'}" for o, n, _ in RENAMED])
def test_old_spellings_still_parse_with_a_note(old, new, dest, capsys):
    new_args = build_parser(new).parse_args(new)
    assert capsys.readouterr().err == ""
    default = verb_parser(new[0]).get_default(dest)
    old_args = build_parser(old).parse_args(old)
    err = capsys.readouterr().err
    flag = next(a for a in old if a.startswith("--") and a not in new)
    assert getattr(old_args, dest) == getattr(new_args, dest) != default
    assert vars(old_args) == vars(new_args)
    assert err.count("\n") == 1 and f"note: {flag} is deprecated" in err and "use --" in err, err


@pytest.mark.parametrize("verb", list(VERBS))
def test_old_spellings_are_not_in_help(verb, capsys):
    with pytest.raises(SystemExit):
        build_parser([verb, "--help"]).parse_args([verb, "--help"])
    text = capsys.readouterr().out
    old = {flag for o, n, _ in RENAMED if o[0] == verb for flag in o if flag.startswith("--") and flag not in n}
    assert not [flag for flag in old if re.search(rf"{re.escape(flag)}\b(?!-)", text)], text


# -- denoise says why ----------------------------------------------------------------------------

@pytest.fixture
def tiny(tmp_path):
    weights = make_tiny_weights(tmp_path / "tiny.pt")
    frame = tmp_path / "in" / "f.exr"
    frame.parent.mkdir()
    write_blender_like(frame, h=24, w=32)
    return weights, frame


def test_a_skipped_frame_says_why_and_o_overwrites(tiny, tmp_path, cli):
    weights, frame = tiny
    out = frame.with_name("f_denoised.exr")
    assert cli("denoise", frame, "--weights", weights, "--device", "cpu")[0] == 0
    written = out.stat().st_mtime_ns
    code, stdout, _ = cli("denoise", frame, "--weights", weights, "--device", "cpu")
    assert code == 0 and "skipped 1" in stdout
    assert f"skipped: {out} exists and is complete; --overwrite to denoise again" in stdout
    assert out.stat().st_mtime_ns == written
    # --out skips the same way; -o always writes.
    assert cli("denoise", frame, "--weights", weights, "--out", tmp_path / "o")[0] == 0
    code, stdout, _ = cli("denoise", frame, "--weights", weights, "--out", tmp_path / "o", "-q")
    assert code == 0 and f"{tmp_path / 'o' / 'f.exr'} exists and is complete" in stdout
    code, stdout, _ = cli("denoise", frame, "--weights", weights, "-o", out)
    assert code == 0 and "skipped:" not in stdout and " -> " in stdout and out.stat().st_mtime_ns != written


def test_colour_only_warning_says_how_to_fix_it(tmp_path, cli):
    weights = make_tiny_weights(tmp_path / "tiny.pt")
    frame = tmp_path / "noaux.exr"
    write_blender_like(frame, h=24, w=32, aux=False)
    code, _, err = cli("denoise", frame, "--weights", weights, "-o", tmp_path / "out.exr", "--device", "cpu")
    assert code == 0
    assert f"warning: {frame}: no albedo and normal pass, denoising from colour only" in err
    assert "enable Denoising Data passes in Blender" in err and "--albedo-pass" in err


def test_verbose_names_what_the_run_used_once(tiny, tmp_path, cli):
    weights, frame = tiny
    second = frame.with_name("g.exr")
    write_blender_like(second, h=80, w=96, seed=3)  # larger than the tile
    code, stdout, _ = cli("denoise", second, frame, "--weights", weights, "--out", tmp_path / "o", "-v",
                          "--device", "cpu", "--tile", "64")
    assert code == 0
    lines = [line for line in stdout.splitlines() if line.startswith("run: ")]
    assert len(lines) == 1, stdout
    line = lines[0]
    for needle in ("layer ViewLayer", "color 'Combined'", "albedo 'Denoising Albedo'", "normal 'Denoising Normal'",
                   f"model weights {weights}", "device cpu", "precision fp32", "tile 64 px"):
        assert needle in line, (needle, line)
    code, stdout, _ = cli("denoise", frame, "--weights", weights, "-o", tmp_path / "x.exr")
    assert "run: " not in stdout  # only with -v


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_without_it_warns_once(tiny, tmp_path, cli, monkeypatch, native):
    from mcdenoise.inference import runtime

    weights, frame = tiny
    second = frame.with_name("g.exr")
    write_blender_like(second, h=24, w=32, seed=3)
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    code, _, err = cli("denoise", frame, second, "--weights", weights, "--out", tmp_path / "o",
                       "--device", "cpu", "--precision", "bf16", "-q")
    assert code == 0
    assert err.count("no native bf16") == (0 if native else 1), err
    code, _, err = cli("denoise", frame, "--weights", weights, "-o", tmp_path / "x.exr", "--device", "cpu")
    assert "bf16" not in err


def test_cpu_bf16_check_agrees_with_cpuinfo():
    from mcdenoise.inference.runtime import cpu_has_native_bf16

    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    assert cpu_has_native_bf16() == ("avx512_bf16" in flags or "amx_tile" in flags)


def test_missing_file_prints_only_our_line(tmp_path, cli):
    weights = make_tiny_weights(tmp_path / "tiny.pt")
    missing = tmp_path / "missing.exr"
    code, _, err = cli("denoise", missing, "--weights", weights)
    assert code == 2
    assert err == f"mcdenoise denoise: error: {missing}: no such file\n", err
