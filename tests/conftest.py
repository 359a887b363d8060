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
