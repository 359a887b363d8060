"""Errors that every front end words in its own terms: the core raises a problem and a fix key
(``mcdenoise.errors``), the CLI words the key as flags (``mcdenoise.cli.wording``), the Blender
add-on as its own controls (``addon/wording.py``), Python callers read the neutral wording."""

from __future__ import annotations

import ast
import importlib.util
import json
import pickle
import re
import sys
from pathlib import Path

import pytest

from batch_fixtures import make_tiny_weights
from exr_fixtures import write_blender_like
from mcdenoise import errors
from mcdenoise.batch.plan import plan_jobs
from mcdenoise.batch.runner import run_batch
from mcdenoise.batch.sequence import FrameSource
from mcdenoise.cli import wording as cli_wording
from mcdenoise.errors import InputFileError, McDenoiseError, MissingPassError
from mcdenoise.models.loader import load_model

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "core" / "mcdenoise"
FLAG = re.compile(r"--[a-z]")
REQUIRE_AUX_CLI = "enable Denoising Data passes in Blender (View Layer > Passes > Data > Denoising Data) or drop --require-aux"


def _load_addon_wording():
    # By file: the add-on package's __init__ imports bpy, its wording module must not need it.
    spec = importlib.util.spec_from_file_location("addon_wording", REPO / "addon" / "wording.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


addon_wording = _load_addon_wording()
TABLES = {"neutral": errors.FIXES, "cli": cli_wording.FIXES, "addon": addon_wording.FIXES}


def _core_sources() -> list[Path]:
    return sorted(p for p in CORE.rglob("*.py") if "__pycache__" not in p.parts)


def _raise_sites() -> list[tuple[str, str, set[str]]]:
    """(where, fix key, detail names) of every call in the core that passes ``fix=``; a key
    chosen by an expression (``fix="a" if x else "b"``) counts each string it can be."""
    sites = []
    for path in _core_sources():
        if path == CORE / "errors.py":  # the mechanism itself (rebuilding an unpickled error)
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            fix = next((k.value for k in node.keywords if k.arg == "fix"), None)
            if fix is None:
                continue
            details = {k.arg for k in node.keywords if k.arg not in (None, "fix")}
            keys = [n.value for n in ast.walk(fix) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            assert keys, f"{path}:{node.lineno}: fix= must name its key(s) literally"
            sites += [(f"{path.relative_to(REPO)}:{node.lineno}", key, details) for key in keys]
    return sites


def _message_text(node: ast.Raise) -> str:
    """The literal text of a raise's exception arguments (f-string pieces included)."""
    if not isinstance(node.exc, ast.Call):
        return ""
    parts = []
    for arg in node.exc.args:
        parts += [n.value for n in ast.walk(arg) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return "".join(parts)


def test_every_fix_key_the_core_raises_is_worded_by_every_front_end():
    sites = _raise_sites()
    used = {key for _, key, _ in sites}
    assert len(sites) >= 20 and "require_aux" in used  # the scan sees the raise sites
    assert TABLES["cli"].keys() == TABLES["neutral"].keys() == TABLES["addon"].keys()
    assert used == set(errors.FIXES), f"raised without wording: {used - set(errors.FIXES)}; worded but never raised: {set(errors.FIXES) - used}"


def test_each_wording_formats_with_the_details_its_raise_sites_pass():
    for where, key, details in _raise_sites():
        values = {name: f"<{name}>" for name in details}
        for table_name, table in TABLES.items():
            text = table[key].format(**values)  # a field no raise site fills is a KeyError here
            assert text and "{" not in text, (where, table_name, key)


def test_no_core_message_names_a_flag():
    """Library code says what is wrong; only the CLI (and the CLI-only benchmark, whose errors
    are about its own flags) names flags."""
    offenders = []
    for path in _core_sources():
        rel = path.relative_to(CORE).parts
        if rel[0] in ("cli", "bench"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and FLAG.search(_message_text(node)):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {_message_text(node)}")
    assert offenders == []
    for table_name in ("neutral", "addon"):
        assert [k for k, v in TABLES[table_name].items() if FLAG.search(v)] == [], table_name


def test_addon_wording_is_pure_python():
    """Blender imports it before PyTorch or the core may be importable."""
    tree = ast.parse((REPO / "addon" / "wording.py").read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= set(sys.stdlib_module_names), imported
    assert addon_wording.JSON_ERRORS == {cli_wording.FORMAT_VARIABLE: "json"}


def test_error_keeps_its_key_and_details_through_pickling(tmp_path):
    exc = InputFileError(f"{tmp_path}: no finished training scenes (0 found in all)", fix="render_dataset", root=tmp_path)
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is InputFileError and back.problem == exc.problem
    assert back.fix == "render_dataset" and back.details == {"root": tmp_path}
    assert cli_wording.describe(back) == f"{exc.problem}; render some with 'mcdenoise render-dataset --out {tmp_path} --scenes N'"
    assert str(back) == str(exc) and "--" not in str(back)  # Python callers read the neutral wording
    with pytest.raises(ValueError, match="unknown fix key"):
        McDenoiseError("x", fix="no_such_key")


def test_each_front_end_words_the_same_error_its_own_way():
    exc = MissingPassError("render.exr: no albedo and normal pass", fix="require_aux")
    assert cli_wording.describe(exc) == f"render.exr: no albedo and normal pass; {REQUIRE_AUX_CLI}"
    assert addon_wording.describe(exc) == ("render.exr: no albedo and normal pass; click 'Set up passes' "
                                           "(enables Denoising Data), or untick 'Require albedo/normal'")
    assert str(exc).startswith("render.exr: no albedo and normal pass; enable the Denoising Data passes")
    assert "--" not in str(exc) and "untick" not in str(exc)
    # The add-on reads the external CLI's JSON line; a line from another version falls back.
    assert addon_wording.describe_json_line(cli_wording.as_json(exc)) == addon_wording.describe(exc)
    assert addon_wording.describe_json_line(json.dumps({"problem": "p", "fix": "from_the_future"})) == "p"
    assert addon_wording.describe_json_line("mcdenoise denoise: error: p") is None


def test_cli_prints_flags_or_a_json_line_the_addon_words(cli, tmp_path, monkeypatch):
    """Refused before any model loads: two inputs for one output file."""
    frames = [tmp_path / "a.exr", tmp_path / "b.exr"]
    for path in frames:
        write_blender_like(path)
    code, _, err = cli("denoise", *frames, "-o", tmp_path / "out.exr")
    assert code == 2
    assert err.strip() == ("mcdenoise denoise: error: 2 input frames but one output file; "
                           "-o/--output takes one input, so for several use --out or --suffix")

    monkeypatch.setenv(cli_wording.FORMAT_VARIABLE, "json")
    code, _, err = cli("denoise", *frames, "-o", tmp_path / "out.exr")
    assert code == 2
    line = json.loads(err.strip().splitlines()[-1])
    assert line == {"error": "McDenoiseError", "problem": "2 input frames but one output file", "fix": "one_output", "details": {}}
    assert addon_wording.describe_json_line(err.strip().splitlines()[-1]) == "2 input frames but one output file; denoise one image at a time"


@pytest.fixture(scope="module")
def no_aux_frame(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("no_aux")
    write_blender_like(folder / "noaux.exr", aux=False)
    return folder / "noaux.exr", make_tiny_weights(folder / "tiny.pt")


def test_batch_failures_are_worded_by_the_front_end(no_aux_frame, tmp_path):
    """The runner reports a failed frame through ``log`` and ``Summary.failed`` in the words
    ``describe`` gives it; without one, in the neutral wording."""
    src, weights = no_aux_frame
    loaded = load_model(weights)
    jobs = plan_jobs([FrameSource(src)], out_dir=tmp_path, suffix="")
    for describe, fix_text in ((str, errors.FIXES["require_aux"]), (cli_wording.describe, REQUIRE_AUX_CLI)):
        logged: list[tuple[str, str]] = []
        summary = run_batch(loaded, jobs, require_aux=True, log=lambda level, m, into=logged: into.append((level, m)),
                            describe=describe)
        expected = f"{src}: no albedo and normal pass; {fix_text}"
        assert summary.failed == [(jobs[0], expected)] and ("error", expected) in logged
    assert list(tmp_path.iterdir()) == []


def test_frame_failure_reaches_the_addon_as_json(cli, no_aux_frame, tmp_path, monkeypatch):
    """What the add-on's external worker runs: a frame refused inside the batch comes out as one
    JSON line on stderr, which the add-on words with its own control."""
    src, weights = no_aux_frame
    out = tmp_path / "out.exr"
    code, _, err = cli("denoise", src, "-o", out, "--weights", weights, "--require-aux", "--device", "cpu")
    assert code == 2 and f"mcdenoise denoise: error: {src}: no albedo and normal pass; {REQUIRE_AUX_CLI}" in err

    monkeypatch.setenv(cli_wording.FORMAT_VARIABLE, "json")
    code, _, err = cli("denoise", src, "-o", out, "--weights", weights, "--require-aux", "--device", "cpu")
    last = err.strip().splitlines()[-1]
    assert code == 2 and json.loads(last)["fix"] == "require_aux" and not out.exists()
    worded = addon_wording.describe_json_line(last)
    assert worded == f"{src}: no albedo and normal pass; {addon_wording.FIXES['require_aux']}"
    assert "untick 'Require albedo/normal'" in worded and "--require-aux" not in worded


def test_colour_only_warning_reaches_the_addon(cli, no_aux_frame, tmp_path):
    """The external worker reports the CLI's warnings in Blender like its in-Blender runs do:
    the add-on must find them in the CLI's own stderr format."""
    src, weights = no_aux_frame
    code, _, err = cli("denoise", src, "-o", tmp_path / "out.exr", "--weights", weights, "--device", "cpu")
    notes = addon_wording.cli_warnings(err)
    assert code == 0 and len(notes) == 1 and notes[0].startswith(f"{src}: no albedo and normal pass"), err
