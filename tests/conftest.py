"""Shared fixtures. Blender must never write into the real home folder during tests, so its user
resources point into a temp dir before anything can import bpy."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_BLENDER_HOME = tempfile.mkdtemp(prefix="mcdenoise-blender-user-")
os.environ.setdefault("BLENDER_USER_RESOURCES", _BLENDER_HOME)
os.environ.setdefault("MCDENOISE_TEST", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DNCNN = REPO.parent / "shared" / "dncnn"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dncnn() -> Path:
    if not SHARED_DNCNN.is_dir():
        pytest.skip(f"{SHARED_DNCNN} is not present (the DnCNN reference kit lives beside the checkout)")
    return SHARED_DNCNN


@pytest.fixture
def cli(monkeypatch, capfd):
    """``mcdenoise ARGS...`` run in this process through the CLI's own ``main``: returns
    (exit code, stdout, stderr). stdout and stderr are captured at the file descriptors, so
    what a C library prints shows too. One subprocess test per contract proves the real entry
    point (tests/test_bad_inputs.py); the rest need no new interpreter (2-4 s each)."""
    from mcdenoise.cli import main
    from mcdenoise.inference import allocator

    # The CLI keeps freed memory mapped for its whole process; pytest's process is not its own.
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: False)
    capfd.readouterr()

    def run(*args) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capfd.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory) -> Path:
    """The extension zip as users get it, built once for every add-on test module."""
    from test_addon import build_zip

    return build_zip(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def untrained(tmp_path_factory) -> Path:
    """A small untrained network for the add-on's plumbing tests, written once."""
    from test_addon import write_untrained

    return write_untrained(tmp_path_factory.mktemp("weights") / "untrained.pt")
