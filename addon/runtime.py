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


# Why importing PyTorch or OpenEXR failed in this Blender session although they were found. A
# failed ``import torch`` leaves half its submodules loaded, so it is not tried again before
# 'Install PyTorch' has put a new copy in place (which calls :func:`forget_import_problem`).
_IMPORT_PROBLEM: dict[str, str] = {}


def import_problem() -> str | None:
    """Why the in-Blender backend cannot run although :func:`missing_modules` found everything
    (a partial install, a wrong ABI, a missing shared library), or None. It imports torch, so
    call it where a denoise is about to import it anyway (not from a panel)."""
    if "problem" in _IMPORT_PROBLEM:
        return _IMPORT_PROBLEM["problem"]
    add_paths()
    for name in ("torch", "OpenEXR"):
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - ImportError, OSError (a .so/.dll), RuntimeError, ...
            _IMPORT_PROBLEM["problem"] = broken_import_message(name, exc)
            return _IMPORT_PROBLEM["problem"]
    return None


def known_import_problem() -> str | None:
    """The problem :func:`import_problem` found, if it already ran (cheap: for panels)."""
    return _IMPORT_PROBLEM.get("problem")


def forget_import_problem() -> None:
    _IMPORT_PROBLEM.clear()
    importlib.invalidate_caches()


def module_folder(name: str) -> Path | None:
    """Where the package ``name`` would be imported from (found without importing it)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin) if spec.origin else None


def broken_import_message(name: str, exc: BaseException) -> str:
    from . import wording  # noqa: PLC0415

    detail = (str(exc).strip().splitlines() or [""])[0]
    folder = module_folder(name)
    site = user_site_dir()
    installed_here = folder is not None and site is not None and _inside(str(folder), site)
    return wording.BROKEN_IMPORT[installed_here].format(
        name=name, error=f"{type(exc).__name__}: {detail}", folder=folder or "?", site=site or "?")


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
