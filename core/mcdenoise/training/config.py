"""The training run's configuration: one typed dataclass, resolved defaults -> config file ->
command-line flags (the flag wins), and saved as ``config.json`` in the run folder so a run can
be resumed, audited and its weights rebuilt without the command line that made it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from mcdenoise.errors import McDenoiseError


@dataclass
class TrainConfig:
    data: str = "data/train"
    run_dir: str = "runs/unet"
    arch: str = "unet"  # "unet" (ResidualUNet) or "dncnn" (DnCNN, 9 input channels)
    widths: str = "balanced"  # U-Net width table entry: fast | balanced | high
    dncnn_depth: int = 17
    steps: int = 2000  # length of the LR schedule and the step budget
    minutes: float = 0.0  # wall-clock budget of this invocation, 0 = none
    batch: int = 8
    crop: int = 128
    lr: float = 2e-3
    warmup: int = 100
    ssim_weight: float = 0.2  # loss = (1 - w) * L1 + w * (1 - MS-SSIM)
    aux_dropout: float = 0.15
    val_fraction: float = 0.1
    val_every: int = 200
    log_every: int = 20
    checkpoint_minutes: float = 3.0
    keep_checkpoints: int = 3
    reload_minutes: float = 5.0  # re-scan the dataset for newly finished scenes
    seed: int = 0
    threads: int = 2
    device: str = "auto"
    workers: int = -1  # threads building crops; -1 = none on CPU, up to 8 on a GPU (see loop)
    init: str = ""  # weights file a fresh run starts from (fine-tuning); ignored on resume
    progress: bool = True

    def model_kwargs(self) -> dict[str, Any]:
        """Constructor kwargs for :func:`mcdenoise.models.build_model` (stored in weights files)."""
        from mcdenoise.models import WIDTHS

        if self.arch == "unet":
            if self.widths not in WIDTHS:
                raise McDenoiseError(f"unknown --widths {self.widths!r}; use one of {', '.join(WIDTHS)}")
            return {"in_channels": 9, "out_channels": 3, "widths": list(WIDTHS[self.widths])}
        if self.arch == "dncnn":
            return {"in_channels": 9, "out_channels": 3, "depth": self.dncnn_depth}
        raise McDenoiseError(f"unknown --arch {self.arch!r}; use unet or dncnn")


FIELD_NAMES = tuple(f.name for f in fields(TrainConfig))


def load_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise McDenoiseError(f"{path}: cannot read training config ({exc})") from exc
    unknown = sorted(set(values) - set(FIELD_NAMES))
    if unknown:
        raise McDenoiseError(f"{path}: unknown config keys {unknown}; known: {', '.join(FIELD_NAMES)}")
    return values


def resolve(config_file: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then the file, then explicit flags (``None`` in ``overrides`` means not given)."""
    values: dict[str, Any] = {}
    if config_file:
        values.update(load_config_file(config_file))
    values.update({k: v for k, v in overrides.items() if v is not None and k in FIELD_NAMES})
    return TrainConfig(**values)


def save(cfg: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(json.dumps(asdict(cfg), indent=1) + "\n")
