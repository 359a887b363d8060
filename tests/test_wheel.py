"""The installable package: a wheel built from this tree installs into a clean virtual
environment and denoises the example frame there, with the shipped weights inside the wheel.

This is what the docs tell users to do instead of a PyPI install; it catches a module or a
weights file that an editable install finds in the source tree but the wheel leaves out.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from mcdenoise.io.exr import read_frame
from mcdenoise.io.passes import PassNames

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_built_wheel_installs_in_a_clean_venv_and_denoises_the_example(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(REPO)],
                   check=True, capture_output=True, text=True, timeout=600)
    wheels = list(dist.glob("mcdenoise-*.whl"))
    assert len(wheels) == 1, wheels
    env = tmp_path / "env"
    venv.create(env, with_pip=True)  # no system site-packages: only what the wheel asks for
    python = env / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheels[0])],
                             capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, install.stderr[-2000:]
    out = tmp_path / "denoised.exr"
    run = subprocess.run([str(env / "bin" / "mcdenoise"), "denoise", str(REPO / "examples" / "suzanne_4spp.exr"), "-o", str(out)],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    where = subprocess.run([str(python), "-c", "import mcdenoise; print(mcdenoise.__file__)"], capture_output=True, text=True, cwd=tmp_path)
    assert str(env) in where.stdout, where.stdout  # the wheel's copy ran, not this checkout's
    denoised = read_frame(out, PassNames(color=("Denoised",))).color
    assert denoised.shape == (240, 320, 3) and denoised.std() > 0
