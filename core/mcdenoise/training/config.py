"""The training run's configuration: one typed dataclass, resolved defaults -> config file ->
command-line flags (the flag wins), and saved as ``config.json`` in the run folder so a run can
be resumed, audited and its weights rebuilt without the command line that made it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from mcdenoise import features
from mcdenoise.choices import (ARCHITECTURES, DEFAULT_ARCH, DEFAULT_DECODER, DEFAULT_DEVICE, DEFAULT_WIDTHS, LOSS_SPACES, TRAIN_PRECISIONS,
                               UNET_DECODERS, UNET_WIDTHS, decoder_config, spoken)
from mcdenoise.errors import McDenoiseError


@dataclass
class TrainConfig:
    data: str = "data/train"
    run_dir: str = "runs/unet"
    arch: str = DEFAULT_ARCH  # one of choices.ARCHITECTURES
    widths: str = DEFAULT_WIDTHS  # U-Net width row: a key of choices.UNET_WIDTHS
    decoder: str = DEFAULT_DECODER  # U-Net decoder row: a key of choices.UNET_DECODERS
    inputs: str = features.DEFAULT_INPUTS  # input layout (mcdenoise.features), written into the weights
    demodulate: bool = False  # U-Net denoises colour / albedo (models.unet)
    dncnn_depth: int = 17
    steps: int = 2000  # length of the LR schedule and the step budget
    minutes: float = 0.0  # wall-clock budget of this invocation, 0 = none
    batch: int = 8
    crop: int = 128
    lr: float = 2e-3
    warmup: int = 100
    ssim_weight: float = 0.2  # loss = (1 - w) * L1 + w * (1 - MS-SSIM)
    loss_space: str = "log"  # one of choices.LOSS_SPACES (training.losses)
    aux_dropout: float = 0.15
    converged: float = 0.0  # share of crops moved toward the reference: converging renders (training.data)
    val_fraction: float = 0.1
    val_every: int = 200
    log_every: int = 20
    checkpoint_minutes: float = 3.0
    keep_checkpoints: int = 3
    reload_minutes: float = 5.0  # re-scan the dataset for newly finished scenes
    seed: int = 0
    threads: int = 2
    device: str = DEFAULT_DEVICE
    precision: str = "auto"  # one of choices.TRAIN_PRECISIONS (training.loop.train_dtype)
    workers: int = -1  # threads building crops; -1 = none on CPU, up to 8 on a GPU (see loop)
    resident: bool = False  # keep the scenes on the training device and cut crops there (training.resident)
    init: str = ""  # weights file a fresh run starts from (fine-tuning); ignored on resume
    # Weights file whose aux prefilter cleans every scene's aux before crops are cut, and which
    # the exported weights carry (inference.prefilter); "" = init's prefilter, if it has one.
    prefilter: str = ""
    progress: bool = True

    def __post_init__(self) -> None:
        # Checked on every construction (flags, config files, recipe stages, finetune), so a
        # bad value stops a recipe at its up-front check, not at a later stage's first step.
        if self.loss_space not in LOSS_SPACES:
            raise McDenoiseError(f"config loss_space {self.loss_space!r}: unknown; use {spoken(LOSS_SPACES)}")
        if self.decoder not in UNET_DECODERS:
            raise McDenoiseError(f"config decoder {self.decoder!r}: unknown; use {spoken(UNET_DECODERS)}")

    def model_kwargs(self) -> dict[str, Any]:
        """Constructor kwargs for :func:`mcdenoise.models.build_model` (stored in weights files)."""
        try:
            renders = features.layout_features(self.inputs)[0] is features.COLOR
        except ValueError as exc:
            raise McDenoiseError(f"config inputs: {exc}") from None
        if not renders:
            raise McDenoiseError(f"config inputs {self.inputs!r}: training denoises colour renders, so the layout starts with color")
        in_channels, out_channels = features.channel_count(self.inputs), features.COLOR.channels
        if self.arch == "unet":
            if self.widths not in UNET_WIDTHS:
                raise McDenoiseError(f"config widths {self.widths!r}: unknown; use one of {', '.join(UNET_WIDTHS)}")
            widths = list(UNET_WIDTHS[self.widths])
            kwargs = {"in_channels": in_channels, "out_channels": out_channels, "widths": widths}
            if self.demodulate:  # older runs' kwargs unchanged
                kwargs["demodulate"] = True
            return {**kwargs, **decoder_config(widths, self.decoder)}
        if self.arch == "dncnn":
            return {"in_channels": in_channels, "out_channels": out_channels, "depth": self.dncnn_depth}
        raise McDenoiseError(f"config arch {self.arch!r}: unknown; use {spoken(ARCHITECTURES)}")


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
