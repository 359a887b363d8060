"""The one model loader: CLI, add-on, training and benchmarks all build networks through here.

A weights file is a plain dict (architecture name, constructor kwargs, which inputs the network
takes, the state dict and free-form metadata), so it loads with ``torch.load(weights_only=True)``
— no pickled code runs when a user opens a file someone sent them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mcdenoise import features
from mcdenoise.choices import DEFAULT_QUALITY, TIERS
from mcdenoise.errors import WeightsError
from mcdenoise.io.atomic import atomic_output
from mcdenoise.models import build_model
from mcdenoise.models.ensemble import SelfEnsemble

FORMAT = "mcdenoise-weights/1"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / TIERS[DEFAULT_QUALITY].weights
# The learned temporal blend (mcdenoise.temporal.blendnet); without it the hand-made blend runs.
TEMPORAL_WEIGHTS = WEIGHTS_DIR / "temporal.pt"
TEMPORAL_FORMAT = "mcdenoise-temporal/1"
# Bounds checked before anything is read or built, so a hostile or broken file cannot make the
# loader allocate gigabytes: the largest shipped file is a few MB, the widest sane network a few
# hundred channels.
MAX_FILE_BYTES = 256 << 20
# How many flips/rotations a file's network is averaged over when it runs (``models.tiers``);
# a shot fine-tune records it so that ``--weights shot.pt`` runs as the tune was checked.
ENSEMBLE_META = "self_ensemble"
MAX_CHANNELS = 64  # input/output channels
MAX_WIDTH = 1024  # conv widths (U-Net levels, DnCNN features)
MAX_DEPTH = 256  # DnCNN layers
# constructor argument -> (smallest, largest); an architecture's config may hold only these.
# Switches (``FLAGS``) are true/false rather than counts.
CONFIG_LIMITS: dict[str, dict[str, tuple[int, int]]] = {
    "unet": {"in_channels": (1, MAX_CHANNELS), "out_channels": (1, MAX_CHANNELS), "widths": (1, MAX_WIDTH),
             "demodulate": (0, 1), "decoder": (1, MAX_WIDTH), "input_skip": (0, 1)},
    "dncnn": {"in_channels": (1, MAX_CHANNELS), "out_channels": (1, MAX_CHANNELS), "depth": (3, MAX_DEPTH),
              "features": (1, MAX_WIDTH)},
}


FLAGS = {"demodulate", "input_skip"}
# The temporal blend network's arguments (temporal.blendnet.BlendNet): a few narrow layers.
BLEND_LIMITS = {"width": (1, 64), "depth": (1, 8)}


# The aux prefilter a colour model may carry (``inference.prefilter``): a U-Net that reads the
# aux passes, albedo then normal, prepared as the colour model reads them, and returns them
# cleaned in the same order.
PREFILTER_KEY = "aux_prefilter"
PREFILTER_CHANNELS = sum(features.FEATURES[name].channels for name in features.AUX_FEATURES)
# A prefilter may also read the render's sample count (the ``samples`` feature's planes after the
# aux): the noise level it cannot tell from a picture whose fine texture looks like noise.
PREFILTER_SAMPLES_CHANNELS = PREFILTER_CHANNELS + features.FEATURES["samples"].channels


@dataclass
class LoadedModel:
    model: nn.Module
    arch: str
    config: dict[str, Any]
    inputs: str  # input layout, a name from mcdenoise.features ("color+albedo+normal")
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    # The aux prefilter the colour network was trained behind (None: it reads the aux as read).
    prefilter: nn.Module | None = None

    @property
    def uses_aux(self) -> bool:
        return features.uses_aux(self.inputs)


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device of ``--device NAME``: one rule for every verb (``inference.runtime``), so
    training, fine-tuning and denoising agree on what 'auto', 'mps' or 'cuda:1' mean."""
    from mcdenoise.inference.runtime import resolve_device as resolve  # runtime imports the encoders: import on use

    return resolve(name)


def save_weights(
    path: str | os.PathLike,
    model: nn.Module,
    arch: str,
    config: dict[str, Any],
    inputs: str,
    meta: dict[str, Any] | None = None,
    prefilter: nn.Module | None = None,
) -> None:
    """Write a weights file atomically (temp + rename), in fp32 on CPU. ``inputs`` names the
    input layout; the file also lists its channels so it explains itself without mcdenoise.
    ``prefilter``: the aux prefilter the colour network was trained behind, stored in the same
    file because the two only work together."""
    channels = features.channel_names(inputs)  # ValueError for an unknown layout
    path = Path(path)
    if isinstance(model, SelfEnsemble):  # the network itself, and how many rotations it runs over
        model, meta = model.model, {**(meta or {}), ENSEMBLE_META: model.n}
    payload = {"format": FORMAT, "arch": arch, "config": dict(config), "inputs": inputs, "channels": channels,
               "state_dict": _cpu_state(model), "meta": dict(meta or {})}
    if prefilter is not None:
        if not features.uses_aux(inputs):
            raise ValueError(f"a model of inputs {inputs!r} reads no aux passes: it has nothing to prefilter")
        payload[PREFILTER_KEY] = {"arch": "unet", "config": prefilter_config(prefilter), "state_dict": _cpu_state(prefilter)}
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}


def prefilter_config(model: nn.Module) -> dict[str, Any]:
    """The constructor arguments of an aux prefilter (a :class:`ResidualUNet` from aux to aux)."""
    widths = [model.enc1[0].out_channels, model.enc2[0].out_channels, model.enc3[0].out_channels,
              model.enc4[0].out_channels, model.mid[0].out_channels]
    return {"in_channels": model.enc1[0].in_channels, "out_channels": PREFILTER_CHANNELS, "widths": widths}


def build_prefilter(widths: tuple[int, ...] | list[int], samples: bool = False) -> nn.Module:
    """A new aux prefilter of the given U-Net widths (``mcdenoise train-prefilter``); with
    ``samples`` it also reads the sample count's planes."""
    return build_model("unet", in_channels=PREFILTER_SAMPLES_CHANNELS if samples else PREFILTER_CHANNELS,
                       out_channels=PREFILTER_CHANNELS, widths=tuple(widths))


def prefilter_reads_samples(model: nn.Module) -> bool:
    """Whether an aux prefilter reads the sample count's planes after the aux channels."""
    return model.enc1[0].in_channels == PREFILTER_SAMPLES_CHANNELS


def _load_prefilter(entry: Any, path: Path, inputs: str) -> nn.Module:
    """The aux prefilter stored beside a colour network, checked as the network itself is."""
    if not isinstance(entry, dict) or entry.get("arch") != "unet":
        raise WeightsError(f"{path}: the aux prefilter is not a U-Net entry", fix="weights_format")
    if not features.uses_aux(inputs):
        raise WeightsError(f"{path}: the file holds an aux prefilter but its network reads no aux passes ({inputs!r})",
                           fix="weights_format")
    config = entry.get("config")
    _check_config("unet", config, path)
    if config.get("in_channels") not in (PREFILTER_CHANNELS, PREFILTER_SAMPLES_CHANNELS) \
            or config.get("out_channels") != PREFILTER_CHANNELS or config.get("demodulate", False):
        raise WeightsError(f"{path}: the aux prefilter must map the {PREFILTER_CHANNELS} aux channels (and optionally "
                           f"the sample count's {PREFILTER_SAMPLES_CHANNELS - PREFILTER_CHANNELS} planes) to the aux "
                           f"channels, not {config}", fix="weights_format")
    _check_state_dict(entry.get("state_dict"), path, "the aux prefilter's weights")
    model = build_model("unet", **config)
    try:
        model.load_state_dict(entry["state_dict"])
    except Exception as exc:
        raise WeightsError(f"{path}: the aux prefilter's weights do not fit its U-Net ({str(exc).strip().splitlines()[0][:200]})",
                           fix="weights_format") from exc
    return model


def load_model(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a weights file (the shipped default when ``path`` is None) in eval mode."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found", fix="reinstall" if path == DEFAULT_WEIGHTS else "weights_path")
    if (size := path.stat().st_size) > MAX_FILE_BYTES:
        raise WeightsError(f"{path}: {size / 2**20:.0f} MB is too large for a weights file (at most {MAX_FILE_BYTES >> 20} MB)",
                           fix="weights_format")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable weights file ({type(exc).__name__}); it may be corrupted or truncated") from exc
    if isinstance(payload, dict) and "dncnn.0.weight" in payload:
        _check_state_dict(payload, path)
        return _load_reference_dncnn(payload, path, device)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise WeightsError(f"{path}: not an mcdenoise weights file (expected format {FORMAT!r})", fix="weights_format")
    arch, config, inputs = payload.get("arch"), payload.get("config", {}), payload.get("inputs")
    if not features.is_layout(inputs):
        raise WeightsError(f"{path}: unknown input layout {inputs!r}")
    _check_config(arch, config, path)
    # A network whose input width is not its layout's would fail on every frame, blaming each.
    if config.get("in_channels", features.channel_count(inputs)) != features.channel_count(inputs):
        raise WeightsError(f"{path}: the network takes {config['in_channels']} input channels but its input layout "
                           f"{inputs!r} has {features.channel_count(inputs)}; the file is inconsistent", fix="weights_format")
    _check_state_dict(payload.get("state_dict"), path)
    try:
        model = build_model(arch, **{"in_channels": features.channel_count(inputs), **config})  # the layout's width unless stated
    except Exception as exc:  # whatever a constructor raises for arguments it cannot take
        raise WeightsError(f"{path}: cannot build architecture {arch!r} with {config} ({exc})") from exc
    try:
        model.load_state_dict(payload["state_dict"])
    except Exception as exc:  # shape mismatches, missing keys, tensors of another dtype
        first = str(exc).strip().splitlines()[0][:200]
        raise WeightsError(f"{path}: weights do not fit architecture {arch!r} ({first})") from exc
    meta = payload.get("meta", {})
    if not isinstance(meta, dict):
        raise WeightsError(f"{path}: the metadata is a {type(meta).__name__}, not a table", fix="weights_format")
    n = meta.get(ENSEMBLE_META, 1)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 8:
        raise WeightsError(f"{path}: metadata {ENSEMBLE_META} = {n!r} must be a whole number of flips/rotations from 1 to 8",
                           fix="weights_format")
    prefilter = _load_prefilter(payload[PREFILTER_KEY], path, inputs) if PREFILTER_KEY in payload else None
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    model.to(dev).eval()
    if prefilter is not None:
        prefilter.to(dev).eval()
    return LoadedModel(model, arch, config, inputs, meta, path, prefilter)


def _check_config(arch: Any, config: Any, path: Path) -> None:
    """Refuse a config the network could not sanely be built from (unknown argument, a width of
    100000 or -8, a bool or string for a count) before anything is allocated."""
    limits = CONFIG_LIMITS.get(arch) if isinstance(arch, str) else None
    if limits is None:
        raise WeightsError(f"{path}: unknown architecture {arch!r}; known: {', '.join(CONFIG_LIMITS)}", fix="weights_format")
    if not isinstance(config, dict):
        raise WeightsError(f"{path}: the network's config is a {type(config).__name__}, not a table of arguments", fix="weights_format")
    for key, value in config.items():
        if key not in limits:
            raise WeightsError(f"{path}: unknown {arch} argument {key!r} in the config", fix="weights_format")
        if key in FLAGS:
            if not isinstance(value, bool):
                raise WeightsError(f"{path}: {arch} {key} = {value!r} must be true or false", fix="weights_format")
            continue
        low, high = limits[key]
        values = value if isinstance(value, (list, tuple)) else [value]
        if not values or len(values) > 16 or any(isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high for v in values):
            raise WeightsError(f"{path}: {arch} {key} = {value!r} is out of range (each between {low} and {high})",
                               fix="weights_format")


def _check_state_dict(state: Any, path: Path, whose: str = "the file's weights") -> None:
    """A state dict is a non-empty table of names to tensors; anything else (a bare tensor, a
    list, an empty table, numbers) is refused by name rather than failing somewhere in torch."""
    if not isinstance(state, dict) or not state:
        kind = "empty" if isinstance(state, dict) else f"a {type(state).__name__}, not a table of tensors"
        raise WeightsError(f"{path}: {whose} (state dict) are {kind}", fix="weights_format")
    bad = next((k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise WeightsError(f"{path}: weights entry {bad!r} is a {type(state[bad]).__name__}, not a tensor", fix="weights_format")


def _load_reference_dncnn(state: dict, path: Path, device: str | torch.device) -> LoadedModel:
    """The DnCNN authors' published weights (plain state dicts with their ``dncnn.<i>`` keys,
    as converted in the reference kit): same module layout, so the keys map one to one and only
    the depth has to be read off the last conv's index (3*depth - 4)."""
    try:
        conv_indices = [int(k.split(".")[1]) for k in state if k.endswith(".weight") and state[k].ndim == 4]
        depth = (max(conv_indices) + 4) // 3
        first = state["dncnn.0.weight"]
        config = {"in_channels": int(first.shape[1]), "out_channels": int(state[f"dncnn.{max(conv_indices)}.weight"].shape[0]),
                  "depth": depth}
        width = int(first.shape[0])
    except (ValueError, IndexError, KeyError) as exc:
        raise WeightsError(f"{path}: DnCNN reference weights have unexpected names or shapes ({exc})", fix="weights_format") from exc
    _check_config("dncnn", dict(config, features=width), path)
    if width != 64:  # the authors' width, which the kit's DnCNN is built with
        raise WeightsError(f"{path}: DnCNN reference weights are {width} features wide, expected 64", fix="weights_format")
    model = build_model("dncnn", **config)
    try:
        model.load_state_dict(state)
    except Exception as exc:
        raise WeightsError(f"{path}: DnCNN reference weights do not fit depth {depth} ({str(exc).splitlines()[0][:200]})") from exc
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    model.to(dev).eval()
    inputs = "grey" if config["in_channels"] == features.channel_count("grey") else "color"
    return LoadedModel(model, "dncnn", config, inputs, {"source": "DnCNN authors' weights"}, path)


# -- the learned temporal blend ----------------------------------------------------------------------

@dataclass
class LoadedBlend:
    model: nn.Module  # mcdenoise.temporal.blendnet.BlendNet, in eval mode on the CPU
    config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def save_blend_weights(path: str | os.PathLike, model: nn.Module, meta: dict[str, Any] | None = None) -> None:
    """Write a temporal blend's weights file (atomically, fp32 on CPU): its own format name, so
    neither loader mistakes a blend for a denoiser or the reverse."""
    payload = {"format": TEMPORAL_FORMAT, "arch": "blendnet", "config": model.config(), "state_dict": _cpu_state(model),
               "meta": dict(meta or {})}
    with atomic_output(Path(path)) as tmp:
        torch.save(payload, tmp)


def load_blend_weights(path: str | os.PathLike) -> LoadedBlend:
    """Load a temporal blend's weights file (``weights_only=True``: no pickled code runs), checked
    as :func:`load_model` checks a denoiser's, or refuse it with a :class:`WeightsError`."""
    from mcdenoise.temporal.blendnet import BlendNet  # the temporal package imports this module

    path = Path(path)
    shipped = path == TEMPORAL_WEIGHTS  # a damaged install, not the user's file
    if not path.is_file():
        raise _refused(f"{path}: temporal weights file not found", shipped)
    if (size := path.stat().st_size) > MAX_FILE_BYTES:
        raise _refused(f"{path}: {size / 2**20:.0f} MB is too large for a weights file", shipped)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise _refused(f"{path}: not a readable weights file ({type(exc).__name__}); it may be corrupted or truncated", shipped) from exc
    if not isinstance(payload, dict) or payload.get("format") != TEMPORAL_FORMAT:
        what = "a denoiser's weights file" if isinstance(payload, dict) and payload.get("format") == FORMAT else "not one"
        raise _refused(f"{path}: not a temporal blend weights file (expected format {TEMPORAL_FORMAT!r}; it is {what})", shipped)
    config = payload.get("config")
    if not isinstance(config, dict) or set(config) != {*BLEND_LIMITS, "guides"} or not isinstance(config["guides"], bool) \
            or any(isinstance(config[k], bool) or not isinstance(config[k], int) or not lo <= config[k] <= hi
                   for k, (lo, hi) in BLEND_LIMITS.items()):
        raise _refused(f"{path}: the blend's config {config!r} is not width (1-64), depth (1-8) and guides (true/false)", shipped)
    try:
        _check_state_dict(payload.get("state_dict"), path)
    except WeightsError as exc:
        raise _refused(exc.problem, shipped) from None
    model = BlendNet(**config)
    try:
        model.load_state_dict(payload["state_dict"])
    except Exception as exc:
        raise _refused(f"{path}: weights do not fit the blend network ({str(exc).strip().splitlines()[0][:200]})", shipped) from exc
    return LoadedBlend(model.eval(), config, payload.get("meta", {}), path)


def _refused(problem: str, shipped: bool) -> WeightsError:
    """A temporal weights file refused: the shipped one means a damaged install."""
    return WeightsError(problem, fix="reinstall" if shipped else "temporal_weights")
