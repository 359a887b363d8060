"""Build the installable Blender extension: ``python build_addon.py`` -> dist/mcdenoise-<version>.zip.

The zip holds ``addon/`` at its root, the part of the core package the add-on imports vendored as
``vendor/mcdenoise`` (with the weights of each quality) and, when PyPI is reachable, OpenEXR
wheels listed in the manifest so Blender installs them with the extension. Benchmark and CLI code
stays out: the add-on never imports it, and its external Python runs its own mcdenoise (training
and dataset code come in for "Fine-tune on this shot", whose process imports them). Plain Python only: no Blender or torch is needed to build (the core's ``io.atomic``,
which writes the zip, and ``choices`` are standard library only).
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON = ROOT / "addon"
CORE = ROOT / "core" / "mcdenoise"
sys.path.insert(0, str(CORE.parent))
from mcdenoise.choices import TIERS  # noqa: E402
from mcdenoise.io.atomic import atomic_output, is_temp  # noqa: E402

# One wheel per platform Blender 4.2+ ships (all on Python 3.11); the manifest's ``platforms``
# must then list exactly these, or Blender refuses a zip whose wheels do not cover a platform.
WHEEL_PLATFORMS = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64"),  # Blender 4.2+ needs glibc 2.28
    "macos-arm64": ("macosx_11_0_arm64",),
    "windows-x64": ("win_amd64",),
}
OPENEXR_REQ = "openexr>=3.2,<4"
SKIP_PARTS = {"__pycache__", ".pytest_cache"}


def core_version() -> str:
    text = (CORE / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.M)
    if not match:
        sys.exit(f"error: no __version__ in {CORE / '__init__.py'}")
    return match.group(1)


def download_wheels(dest: Path) -> list[Path]:
    """Fetch OpenEXR for every platform; an empty list (with a warning) when PyPI is unreachable."""
    for tags in WHEEL_PLATFORMS.values():
        cmd = [sys.executable, "-m", "pip", "download", OPENEXR_REQ, "--no-deps", "--only-binary=:all:",
               "--python-version", "3.11", "-d", str(dest), "-q"]
        for tag in tags:
            cmd += ["--platform", tag]
        try:
            subprocess.run(cmd, check=True, timeout=120, capture_output=True, text=True)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            print(f"warning: could not download OpenEXR wheels ({detail.strip().splitlines()[-1] if detail.strip() else exc}); "
                  "building without them: in Blender use 'Install PyTorch' or an external Python (see docs/blender.md)",
                  file=sys.stderr)
            return []
    return sorted(dest.glob("*.whl"))


def manifest_text(version: str, wheels: list[Path]) -> str:
    text = (ADDON / "blender_manifest.toml").read_text(encoding="utf-8")
    text = re.sub(r'^version\s*=\s*"[^"]*"', f'version = "{version}"', text, count=1, flags=re.M)
    if wheels:
        listed = ", ".join(f'"./wheels/{w.name}"' for w in wheels)
        platforms = ", ".join(f'"{p}"' for p in WHEEL_PLATFORMS)
        # Top-level keys must come before the first [table] of the TOML file.
        head, table, rest = text.partition("\n[")
        text = f"{head}\nplatforms = [{platforms}]\nwheels = [{listed}]\n{table}{rest}"
    return text


def add_tree(zf: zipfile.ZipFile, src: Path, arc_root: str, skip: set[str] = frozenset()) -> None:
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if path.is_dir() or SKIP_PARTS & set(rel.parts) or path.suffix == ".pyc" or rel.parts[0] in skip:
            continue
        if is_temp(path):  # e.g. weights a training run is still writing
            continue
        zf.write(path, f"{arc_root}/{rel.as_posix()}" if arc_root else rel.as_posix())


def _core_imports(path: Path) -> set[str]:
    """The ``mcdenoise`` modules a file imports, lazy imports inside functions included; for
    ``from mcdenoise.x import y`` both ``mcdenoise.x`` and ``mcdenoise.x.y`` (y may be a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {n for n in names if n == "mcdenoise" or n.startswith("mcdenoise.")}


def _module_file(name: str) -> Path | None:
    rel = Path(*name.split(".")[1:])
    for path in (CORE / rel / "__init__.py", (CORE / rel).with_suffix(".py")):
        if path.is_file():
            return path
    return None


def core_files() -> list[Path]:
    """What the add-on needs of the core: every module it imports, followed through the core's
    own imports (a package's ``__init__`` with each of its modules), and the weights of each
    quality of ``choices.TIERS``."""
    todo = {"mcdenoise"}.union(*(_core_imports(p) for p in ADDON.glob("*.py")))
    found: set[Path] = set()
    while todo:
        parts = todo.pop().split(".")
        for depth in range(1, len(parts) + 1):
            path = _module_file(".".join(parts[:depth]))
            if path is not None and path not in found:
                found.add(path)
                todo |= _core_imports(path)
    weights = {CORE / "weights" / tier.weights for tier in TIERS.values()}
    return sorted(found | {w for w in weights if w.is_file()})


def build(out_dir: Path, with_wheels: bool) -> Path:
    version = core_version()
    if not (CORE / "weights" / "default.pt").is_file():
        print(f"warning: {CORE / 'weights' / 'default.pt'} is missing; the extension will need a weights "
              "file chosen in its preferences", file=sys.stderr)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"mcdenoise-{version}.zip"
    with tempfile.TemporaryDirectory() as tmp:
        wheels = download_wheels(Path(tmp)) if with_wheels else []
        with atomic_output(out) as partial, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("blender_manifest.toml", manifest_text(version, wheels))
            add_tree(zf, ADDON, "", skip={"blender_manifest.toml"})
            for path in core_files():
                zf.write(path, f"vendor/mcdenoise/{path.relative_to(CORE).as_posix()}")
            for wheel in wheels:
                zf.write(wheel, f"wheels/{wheel.name}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "dist", help="where the zip goes (default: dist/)")
    parser.add_argument("--no-wheels", action="store_true", help="do not download OpenEXR wheels from PyPI")
    args = parser.parse_args()
    out = build(args.out_dir, with_wheels=not args.no_wheels)
    print(f"{out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
