"""Where the core and PyTorch come from inside Blender.

Blender's Python has numpy but neither torch nor OpenEXR, so nothing here imports them at module
level: registering the extension must work on a bare Blender. The core ships vendored in the zip
(``vendor/mcdenoise``); it is put first on ``sys.path`` so a developer's own mcdenoise install
cannot silently replace the copy that matches this add-on's UI.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ADDON_DIR = Path(__file__).resolve().parent
VENDOR_DIR = ADDON_DIR / "vendor"
TORCH_SPEC = "torch==2.13.0"
TORCH_INDEX = {"CPU": "https://download.pytorch.org/whl/cpu", "CUDA": "https://download.pytorch.org/whl/cu128"}


# The user site folder, looked up once on the main thread: the denoise worker thread must not
# call into bpy.
_SITE: dict[str, Path | None] = {}


def user_site_dir(create: bool = False) -> Path | None:
    """The extension's own writable folder for an 'Install PyTorch' target (None outside Blender)."""
    if "site" in _SITE and not create:
        return _SITE["site"]
    try:
        import bpy  # noqa: PLC0415

        site = Path(bpy.utils.extension_path_user(__package__, path="site-packages", create=create))
    except (ImportError, ValueError, AttributeError):
        site = None
    _SITE["site"] = site
    return site


def add_paths() -> None:
    """Vendored core first; the user site folder (torch installed by the button) after Blender's own."""
    vendor = str(VENDOR_DIR)
    if VENDOR_DIR.is_dir() and vendor not in sys.path:
        sys.path.insert(0, vendor)
    site = user_site_dir()
    if site is not None and site.is_dir() and str(site) not in sys.path:
        sys.path.append(str(site))


def remove_paths() -> None:
    for path in (str(VENDOR_DIR), str(user_site_dir() or "")):
        while path and path in sys.path:
            sys.path.remove(path)


def core():
    """Import the vendored ``mcdenoise`` package, dropping any other copy imported before."""
    add_paths()
    loaded = sys.modules.get("mcdenoise")
    if loaded is not None and VENDOR_DIR.is_dir() and not _inside(getattr(loaded, "__file__", "") or "", VENDOR_DIR):
        print(f"mcdenoise: using the extension's copy instead of {loaded.__file__}", file=sys.stderr)
        for name in [n for n in sys.modules if n == "mcdenoise" or n.startswith("mcdenoise.")]:
            del sys.modules[name]
    import mcdenoise  # noqa: PLC0415

    return mcdenoise


def _inside(path: str, folder: Path) -> bool:
    try:
        Path(path).resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def missing_modules() -> list[str]:
    """Modules an in-Blender denoise needs and cannot import (checked without importing them)."""
    add_paths()
    return [name for name in ("torch", "OpenEXR", "numpy", "psutil") if importlib.util.find_spec(name) is None]


def external_python_problem(python: str) -> str | None:
    """Why an 'external Python' path cannot be used, or None."""
    if not python:
        return "no external Python set in the mcdenoise preferences"
    path = Path(bpy_abspath(python))
    if not path.is_file() or not os.access(path, os.X_OK):
        return f"{path}: not an executable Python; point it at <env>/bin/python (or python.exe) of an environment with mcdenoise installed"
    return None


def bpy_abspath(path: str) -> str:
    """A path as Blender resolves it ('//' is the .blend's folder); main thread only."""
    try:
        import bpy  # noqa: PLC0415

        return bpy.path.abspath(path)
    except ImportError:
        return path
