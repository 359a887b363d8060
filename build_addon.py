"""Build the installable Blender extension: ``python build_addon.py`` -> dist/mcdenoise-<version>.zip.

The zip holds ``addon/`` at its root, the core package vendored as ``vendor/mcdenoise`` (with the
shipped weights) and, when PyPI is reachable, OpenEXR wheels listed in the manifest so Blender
installs them with the extension. Plain Python only: no Blender or torch is needed to build.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON = ROOT / "addon"
CORE = ROOT / "core" / "mcdenoise"
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
        if path.name.startswith(".") and ".tmp" in path.name:  # half-written weights of a training run
            continue
        zf.write(path, f"{arc_root}/{rel.as_posix()}" if arc_root else rel.as_posix())


def build(out_dir: Path, with_wheels: bool) -> Path:
    version = core_version()
    if not (CORE / "weights" / "default.pt").is_file():
        print(f"warning: {CORE / 'weights' / 'default.pt'} is missing; the extension will need a weights "
              "file chosen in its preferences", file=sys.stderr)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"mcdenoise-{version}.zip"
    with tempfile.TemporaryDirectory() as tmp:
        wheels = download_wheels(Path(tmp)) if with_wheels else []
        partial = out.with_name(f".{out.name}.partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("blender_manifest.toml", manifest_text(version, wheels))
            add_tree(zf, ADDON, "", skip={"blender_manifest.toml"})
            add_tree(zf, CORE, "vendor/mcdenoise")
            for wheel in wheels:
                zf.write(wheel, f"wheels/{wheel.name}")
        partial.replace(out)
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
