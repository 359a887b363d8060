"""Atomic writes: the one temp-name rule, which temps a re-run may delete, and that temps are
never taken for inputs. (Killed runs' temps being removed on resume: tests/test_batch.py and
tests/test_render_dataset.py; a failed write leaving no temp: tests/test_exr.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mcdenoise.batch.sequence import expand_inputs
from mcdenoise.errors import InputFileError, OutputError
from mcdenoise.io import atomic
from mcdenoise.io.atomic import atomic_output, is_stale, is_temp, remove_stale_temps, stale_temps, temp_path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temp_names_are_hidden_beside_the_target_and_name_their_owner(tmp_path):
    target = tmp_path / "shot_0001.v2.exr"
    tmp = temp_path(target)
    assert tmp.parent == tmp_path and tmp.name.startswith(".shot_0001.v2.") and tmp.name.endswith(".tmp.exr")
    assert f".{os.getpid()}." in tmp.name and is_temp(tmp) and temp_path(target) != tmp
    assert is_temp(temp_path(tmp_path / "latest")) and is_temp(temp_path(tmp_path / "a.tmp"))
    for name in ("shot_0001.exr", ".hidden.exr", ".shot_0001.1f3a9c0e.tmp.exr", "shot.tmp.exr"):
        assert not is_temp(tmp_path / name), name


def test_only_temps_of_gone_processes_of_this_host_are_removed(tmp_path, monkeypatch):
    """Two farm runs on one folder must not delete each other's in-flight temps."""
    target = tmp_path / "shot_0001.exr"
    dead = temp_path(target, pid=_dead_pid())
    live = temp_path(target, pid=os.getppid())
    monkeypatch.setattr(atomic, "host_name", lambda: "renderfarm-node-99")
    other_host = temp_path(target, pid=_dead_pid())  # its owner cannot be checked from here
    monkeypatch.undo()
    other_target = temp_path(tmp_path / "shot_0001.v2.exr", pid=_dead_pid())
    for p in (dead, live, other_host, other_target):
        p.write_bytes(b"half a file")
    assert is_stale(dead) and not is_stale(live) and not is_stale(other_host)
    assert stale_temps(target) == [dead]
    assert remove_stale_temps(target) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (live, other_host, other_target))
    folder = temp_path(tmp_path / "scene_00001", pid=_dead_pid())  # a folder written as a whole
    (folder / "sub").mkdir(parents=True)
    assert remove_stale_temps(tmp_path / "scene_00001") == 1 and not folder.exists()


def test_atomic_output_renames_on_success_and_removes_the_temp_on_failure(tmp_path):
    target = tmp_path / "w.pt"
    with atomic_output(target) as tmp:
        assert is_temp(tmp) and tmp.exists()
        tmp.write_text("done")
    assert target.read_text() == "done" and os.listdir(tmp_path) == ["w.pt"]
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "done" and os.listdir(tmp_path) == ["w.pt"]
    with pytest.raises(OutputError, match="does not exist"), atomic_output(tmp_path / "nowhere" / "w.pt"):
        pass


def test_temps_are_never_inputs(tmp_path):
    (tmp_path / "shot_0001.exr").write_bytes(b"")
    temp_path(tmp_path / "shot_0002.exr").write_bytes(b"")
    temp_path(tmp_path / "shot_0003.exr", pid=_dead_pid()).write_bytes(b"")
    for item in (tmp_path, tmp_path / "*.exr"):
        assert [s.path.name for s in expand_inputs([str(item)])] == ["shot_0001.exr"], item
    with pytest.raises(InputFileError, match="no .exr files match"):
        expand_inputs([str(tmp_path / ".*.exr")])
