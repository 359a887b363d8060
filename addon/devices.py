"""The preferences' Device choice: the devices of the core's table (``choices.DEVICES``) that
this platform can have, and once PyTorch is loaded in Blender, only the GPU kinds it really sees.

Blender's Python may have no PyTorch (the model then runs in an external Python), and importing
it to draw a menu would cost seconds, so the platform decides first: Apple's MPS on an Apple
silicon Mac, CUDA/ROCm and Intel's XPU on Linux and Windows. A ROCm build of PyTorch names AMD
GPUs ``cuda``; the menu then says ROCm.
"""

from __future__ import annotations

import platform
import sys

from . import runtime
from .worker import DEVICE_NAMES

IDS = {name: key for key, name in DEVICE_NAMES.items()}  # "cuda" -> "GPU" (the name saved before)
# Blender stores an enum as a number: each device keeps its own (AUTO, CPU, GPU as the menu
# numbered them before it grew), so a saved choice reads the same whatever the menu offers.
NUMBERS = {"AUTO": 0, "CPU": 1, "GPU": 2, "MPS": 3, "XPU": 4}


def loaded_gpus() -> list[str] | None:
    """The GPU kinds PyTorch sees, when it is already imported in Blender; None otherwise."""
    if sys.modules.get("torch") is None:
        return None
    runtime.core()
    try:
        from mcdenoise.inference.runtime import gpu_devices  # noqa: PLC0415
    except ImportError:
        return None
    return gpu_devices()


def offered(system: str | None = None, machine: str | None = None, gpus: list[str] | None = None) -> list[str]:
    """The ``--device`` names the menu offers, in the table's order: those of this platform, and
    of its GPU kinds only those in ``gpus`` when that is known."""
    runtime.core()
    from mcdenoise.choices import DEVICES, GPU_DEVICES  # noqa: PLC0415 (pure Python)

    system, machine = system or platform.system(), machine or platform.machine()
    names = [device.name for device in DEVICES.values() if device.on_platform(system, machine)]
    return [name for name in names if gpus is None or name not in GPU_DEVICES or name in gpus]


def label(name: str) -> str:
    runtime.core()
    from mcdenoise.choices import DEVICES  # noqa: PLC0415

    if name == "cuda" and sys.modules.get("torch") is not None and getattr(sys.modules["torch"].version, "hip", None):
        return "GPU (ROCm)"
    return DEVICES[name].label


def _items() -> list[tuple[str, str, str, int]]:
    runtime.core()
    from mcdenoise.choices import DEVICES  # noqa: PLC0415

    return [(IDS[name], device.label, device.description, NUMBERS[IDS[name]]) for name, device in DEVICES.items()]


# Every device of the table is a valid value everywhere (preferences synced from a Mac stay
# readable on Linux); :func:`draw` shows the ones of this platform.
ITEMS = _items()


def shown(current: str) -> list[str]:
    """The menu's entries (preference ids): what :func:`offered` gives here, and the saved
    choice even where it cannot run, so it is never hidden; denoising then says why it failed."""
    ids = [IDS[name] for name in offered(gpus=loaded_gpus())]
    return ids + [current] if current not in ids else ids


def draw(layout, prefs) -> None:
    """The Device choice as buttons, one per device this platform can have."""
    row = layout.row(align=True)
    row.label(text="Device")
    for key in shown(prefs.device):
        row.prop_enum(prefs, "device", key, text=label(DEVICE_NAMES[key]))
