"""Residual U-Net for Monte-Carlo renders (the project's render model).

DnCNN sees 35x35 pixels, far too little context for 1-4 spp noise where a single sample may be
the only light in a 20-pixel neighbourhood. Following the structure of OIDN's U-Net (Áfra,
Intel Open Image Denoise, 2019; Ronneberger et al., MICCAI 2015) this network pools four times,
so each output pixel sees a window of about 200 pixels, and takes albedo and normal alongside
colour so that texture and geometry edges stay sharp. Like DnCNN it predicts the residual:
``clean = colour - net(x)`` in the HDR-transformed space.

Plain 3x3 conv + ReLU, max pool, nearest upsampling and skip concatenation: all of it maps to
fast kernels on CPU (oneDNN) and GPU, and no normalisation layer makes results depend on the
tile or batch. Channel widths come from a small table so quality/speed variants share code.

With ``demodulate`` the network also denoises *irradiance* (Bako et al., KPCN, SIGGRAPH 2017;
most real-time denoisers): it reads colour / albedo beside colour, predicts a denoised
irradiance that is multiplied back by the albedo, and a per-pixel weight that mixes that with
its colour prediction. Texture can then reach the output through the albedo, which is nearly
converged at a few samples per pixel, instead of through the network, which can only smooth
it; and because the irradiance branch predicts a residual, its "change nothing" answer lets a
converging input through untouched. Where the albedo itself is noisy (sub-pixel texture, depth
of field, motion blur, glass) multiplying it back would bring its noise along, so the network
learns to lean on the colour branch there. All of it happens inside ``forward`` pixel by pixel
(tiles still equal the whole frame). :func:`add_demodulation` turns a colour model into one that
computes (almost exactly) what it computed, so training starts from a shipped model's quality.

Args:
    in_channels: the width of its input layout (``mcdenoise.features.channel_count``); by default
        colour + albedo + normal, the layout of every shipped model.
    out_channels: 3.
    widths: channels per level, full resolution first, bottleneck last (5 entries).
    demodulate: add the irradiance branch and the mix (the layout must have albedo right after colour).
    decoder: the decoder's 8 conv widths, two per level from the coarsest (``dec4``) to the
        finest (``dec1``); by default the encoder's widths mirrored. ``choices.UNET_DECODERS``
        names the rows ``train --decoder`` offers.
    input_skip: concatenate the network's input into the finest decoder level, as OIDN's U-Net
        does, so the last convs see the aux passes at full resolution and unmixed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mcdenoise.choices import DEFAULT_WIDTHS, UNET_WIDTHS, decoder_widths
from mcdenoise.features import DEFAULT_INPUTS, channel_count, channel_slices

WIDTHS = UNET_WIDTHS  # the width rows, by name (``mcdenoise.choices``)
# Where colour and albedo sit in a demodulating network's input: the layout starts color+albedo.
_COLOR, _ALBEDO = (channel_slices("color+albedo")[name] for name in ("color", "albedo"))
# Added to the albedo before dividing: a black surface (albedo 0) keeps a finite irradiance, and
# dark albedo does not blow its noise up beyond what the log transform absorbs.
DEMODULATION_EPSILON = 0.01


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


class ResidualUNet(nn.Module):
    # The tiling contract (``models.check_contract``). Four 2x poolings: sizes and tile origins
    # must be multiples of 16. Receptive radius, a bound whatever the widths: two 3x3 convs per
    # level at scale s add 2*s each, a 2x2 pool at scale s adds s, the output conv 1.
    alignment = 16
    receptive_radius = 2 * (1 + 2 + 4 + 8) + (1 + 2 + 4 + 8) + 2 * 16 + 2 * (8 + 4 + 2 + 1) + 1

    def __init__(self, in_channels: int = channel_count(DEFAULT_INPUTS), out_channels: int = 3,
                 widths: tuple[int, ...] | list[int] = WIDTHS[DEFAULT_WIDTHS], demodulate: bool = False,
                 decoder: tuple[int, ...] | list[int] | None = None, input_skip: bool = False):
        super().__init__()
        if len(widths) != 5:
            raise ValueError("widths needs 5 entries (4 levels + bottleneck)")
        if decoder is not None and len(decoder) != 8:
            raise ValueError("decoder needs 8 entries (two convs for each of 4 levels, coarsest first)")
        if demodulate and (in_channels < _ALBEDO.stop or out_channels != _COLOR.stop):
            raise ValueError("demodulate needs a colour+albedo input layout and a colour output")
        c1, c2, c3, c4, c5 = widths
        d4a, d4b, d3a, d3b, d2a, d2b, d1a, d1b = decoder if decoder is not None else decoder_widths(widths)
        self.out_channels = out_channels
        self.demodulate = bool(demodulate)
        self.input_skip = bool(input_skip)
        normal = channel_slices(DEFAULT_INPUTS)["normal"]  # aux channels: albedo, then normal if given
        self._aux_end = normal.stop if in_channels >= normal.stop else _ALBEDO.stop
        extra = _COLOR.stop if demodulate else 0  # the irradiance channels, read after colour
        x_channels = in_channels + extra  # what enc1 reads, and the input skip brings to dec1
        self.enc1 = nn.ModuleList([_conv(x_channels, c1), _conv(c1, c1)])
        self.enc2 = nn.ModuleList([_conv(c1, c2), _conv(c2, c2)])
        self.enc3 = nn.ModuleList([_conv(c2, c3), _conv(c3, c3)])
        self.enc4 = nn.ModuleList([_conv(c3, c4), _conv(c4, c4)])
        self.mid = nn.ModuleList([_conv(c4, c5), _conv(c5, c5)])
        self.dec4 = nn.ModuleList([_conv(c5 + c4, d4a), _conv(d4a, d4b)])
        self.dec3 = nn.ModuleList([_conv(d4b + c3, d3a), _conv(d3a, d3b)])
        self.dec2 = nn.ModuleList([_conv(d3b + c2, d2a), _conv(d2a, d2b)])
        self.dec1 = nn.ModuleList([_conv(d2b + c1 + (x_channels if input_skip else 0), d1a), _conv(d1a, d1b)])
        # colour residual; with demodulation also the irradiance residual and the mix logit
        self.out = _conv(d1b, 2 * out_channels + 1 if demodulate else out_channels)

    @property
    def widths(self) -> list[int]:
        """The five widths it was built with (what add_demodulation, add_inputs and widen rebuild)."""
        return [level[1].out_channels for level in (self.enc1, self.enc2, self.enc3, self.enc4, self.mid)]

    @property
    def decoder(self) -> list[int]:
        """The decoder's 8 conv widths, coarsest level first."""
        return [level[k].out_channels for level in (self.dec4, self.dec3, self.dec2, self.dec1) for k in (0, 1)]

    def arch_config(self) -> dict:
        """Its constructor arguments as a weights file stores them: the decoder and the input
        skip only where they differ from the plain mirrored U-Net, so files of the plain
        network read as they always did."""
        config = {"in_channels": self.layout_channels, "out_channels": self.out_channels, "widths": self.widths}
        if self.demodulate:
            config["demodulate"] = True
        if self.decoder != decoder_widths(self.widths):
            config["decoder"] = self.decoder
        if self.input_skip:
            config["input_skip"] = True
        return config

    @property
    def layout_channels(self) -> int:
        """The width of its input layout (``in_channels``): enc1 also reads the irradiance
        channels when it demodulates."""
        return self.enc1[0].in_channels - (_COLOR.stop if self.demodulate else 0)

    @staticmethod
    def _block(convs: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        for conv in convs:
            x = F.relu(conv(x), inplace=True)
        return x

    def _modulation(self, x: torch.Tensor) -> torch.Tensor:
        """Per pixel, what colour is divided by: albedo + epsilon on surfaces, 1 where the pixel
        has no aux at all (albedo and normal zero: the background, or a file without aux passes,
        which the network is trained to see as zeros), so those pixels are denoised as colour."""
        albedo = x[:, _ALBEDO]
        has_aux = x[:, _ALBEDO.start : self._aux_end].abs().amax(dim=1, keepdim=True) > 0
        return torch.where(has_aux, albedo + DEMODULATION_EPSILON, torch.ones_like(albedo))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.demodulate:
            return x[:, : self.out_channels] - self._body(x)
        # The division and the way back in float32 whatever the autocast (expm1/log1p of half
        # floats would cost the HDR range); the network itself runs at the caller's precision.
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            colour, modulation = x[:, _COLOR], self._modulation(x)
            irradiance = torch.log1p(torch.expm1(colour) / modulation)
            x = torch.cat([colour, irradiance, x[:, _COLOR.stop :]], 1)
        o = self._body(x)
        with torch.autocast(x.device.type, enabled=False):
            o = o.float()
            direct = colour - o[:, _COLOR]
            lit = irradiance - o[:, _COLOR.stop : 2 * _COLOR.stop]
            # Below -1 log1p is undefined; a negative answer is black either way (hdr.inverse_).
            remodulated = torch.log1p((torch.expm1(lit) * modulation).clamp(min=-0.99))
            mix = torch.sigmoid(o[:, 2 * _COLOR.stop :])
            return direct + mix * (remodulated - direct)

    def _body(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self._block(self.enc1, x)
        s2 = self._block(self.enc2, F.max_pool2d(s1, 2))
        s3 = self._block(self.enc3, F.max_pool2d(s2, 2))
        s4 = self._block(self.enc4, F.max_pool2d(s3, 2))
        y = self._block(self.mid, F.max_pool2d(s4, 2))
        y = self._block(self.dec4, torch.cat([F.interpolate(y, scale_factor=2.0, mode="nearest"), s4], 1))
        y = self._block(self.dec3, torch.cat([F.interpolate(y, scale_factor=2.0, mode="nearest"), s3], 1))
        y = self._block(self.dec2, torch.cat([F.interpolate(y, scale_factor=2.0, mode="nearest"), s2], 1))
        skips = [s1, x] if self.input_skip else [s1]
        y = self._block(self.dec1, torch.cat([F.interpolate(y, scale_factor=2.0, mode="nearest"), *skips], 1))
        return self.out(y)


def add_demodulation(plain: ResidualUNet) -> ResidualUNet:
    """A demodulating U-Net that starts where ``plain`` is: every weight is kept, the irradiance
    input channels get zero weight (the features are the colour model's), the irradiance branch
    subtracts the very residual the colour branch does, and the mix starts at one half.

    Subtracting a log-space residual from log(colour / albedo) and multiplying the albedo back is
    subtracting it from log(colour): for all but the darkest pixels the two branches agree at the
    start, so the new model computes nearly what ``plain`` did; and since the mix starts in the
    middle, its gradient is at full strength from the first step (a mix started near 0 to copy
    ``plain`` exactly barely moves: the sigmoid's slope there is as small as its value)."""
    if plain.demodulate:
        return plain
    model = ResidualUNet(**{**plain.arch_config(), "demodulate": True})
    state, old = model.state_dict(), plain.state_dict()
    c = _COLOR.stop
    # where the network's input starts in a conv's input: enc1 reads it alone, dec1 after its
    # upsampled and skipped features when it has the input skip
    reads_input = {"enc1.0.weight": 0}
    if plain.input_skip:  # dec1 reads [upsampled dec2, enc1, the input]
        reads_input["dec1.0.weight"] = sum(_conv_inputs(plain)["dec1.0"][:2])
    with torch.no_grad():
        for name, value in old.items():
            if name in reads_input:  # [... | colour | irradiance (new, zero) | guides]
                at = reads_input[name]
                state[name].zero_()
                state[name][:, : at + c] = value[:, : at + c]
                state[name][:, at + 2 * c :] = value[:, at + c :]
            elif name in ("out.weight", "out.bias"):  # [colour residual | irradiance residual | mix]
                state[name].zero_()
                state[name][:c] = value
                state[name][c : 2 * c] = value
            else:
                state[name].copy_(value)
    model.load_state_dict(state)
    return model


def add_inputs(model: ResidualUNet, extra: int) -> ResidualUNet:
    """The U-Net ``model`` reading ``extra`` more input channels after its own, with zero weight:
    it computes exactly what ``model`` computes until training gives them a use. How a shipped
    model is grown into a layout with a new guide (``samples``) without starting over."""
    config = model.arch_config()
    grown = ResidualUNet(**{**config, "in_channels": config["in_channels"] + extra})
    state = model.state_dict()
    # the input is the last part of what these convs read (dec1: only with the input skip)
    for name in ["enc1.0.weight"] + (["dec1.0.weight"] if model.input_skip else []):
        with torch.no_grad():
            w = state[name]
            state[name] = torch.cat([w, w.new_zeros(w.shape[0], extra, *w.shape[2:])], 1)
    grown.load_state_dict(state)
    return grown


def _conv_inputs(net: ResidualUNet | dict) -> dict[str, list[int]]:
    """Per conv (state-dict prefix), the widths of the tensors concatenated into its input, in
    order: what ``forward`` feeds it. Widening needs it to know where a narrow net's input
    channels sit in a wide one's (a decoder's input is [upsampled deeper level, skip], and with
    the input skip the finest level's also ends with the network's input; without it that part
    is there with width 0, so a net without the skip lines up with one that has it)."""
    cfg = net.arch_config() if isinstance(net, ResidualUNet) else net
    c = list(cfg["widths"])
    d = list(cfg.get("decoder") or decoder_widths(c))
    x = cfg["in_channels"] + (_COLOR.stop if cfg.get("demodulate") else 0)
    layout = {"enc1.0": [x], "out": [d[7]]}
    for i, name in enumerate(["enc1", "enc2", "enc3", "enc4", "mid"]):
        if i > 0:
            layout[f"{name}.0"] = [c[i - 1]]
        layout[f"{name}.1"] = [c[i]]
    deeper = c[4]
    for k, (i, name) in enumerate(zip([3, 2, 1, 0], ["dec4", "dec3", "dec2", "dec1"])):
        layout[f"{name}.0"] = [deeper, c[i]]
        layout[f"{name}.1"] = [d[2 * k]]
        deeper = d[2 * k + 1]
    layout["dec1.0"].append(x if cfg.get("input_skip") else 0)
    return layout


def widen(narrow: ResidualUNet, widths: tuple[int, ...] | list[int], decoder: tuple[int, ...] | list[int] | None = None,
          input_skip: bool | None = None) -> ResidualUNet:
    """A wider U-Net that computes exactly what ``narrow`` computes, to train further.

    Training a wide network from scratch costs hours the shipped narrow one already spent; this
    starts the wide one where the narrow one is (Net2Net, Chen et al., ICLR 2016, in its
    zero-init form). Old channels keep their weights; each added channel gets a fresh random
    input filter and zero weight in every conv that reads it, so it changes nothing until
    training gives it a use, and the gradient reaches it through those zero weights at once.
    The decoder may grow the same way, and gain the input skip (its channels read at zero weight).
    ``decoder`` None: the new widths mirrored if ``narrow``'s decoder is mirrored, else its own;
    ``input_skip`` None: as ``narrow``.
    """
    old = narrow.arch_config()
    if decoder is None:
        decoder = old["decoder"] if "decoder" in old else decoder_widths(widths)
    input_skip = narrow.input_skip if input_skip is None else input_skip
    new = {**old, "widths": list(widths), "decoder": list(decoder), "input_skip": bool(input_skip)}
    old_d, new_d = narrow.decoder, list(decoder)
    if (len(widths) != len(old["widths"]) or any(w < o for w, o in zip(widths, old["widths"]))
            or len(new_d) != len(old_d) or any(w < o for w, o in zip(new_d, old_d)) or narrow.input_skip > input_skip):
        raise ValueError(f"cannot widen a U-Net of widths {old['widths']}, decoder {old_d}"
                         f"{' with the input skip' if narrow.input_skip else ''} to widths {list(widths)}, decoder {new_d}"
                         f"{' with' if input_skip else ' without'} it: every conv must stay or grow")
    wide = ResidualUNet(**new)
    old_layout, new_layout = _conv_inputs(narrow), _conv_inputs(new)
    old_state, state = narrow.state_dict(), wide.state_dict()
    with torch.no_grad():
        for name, new_parts in new_layout.items():
            # where each of the narrow conv's input channels sits in the wide conv's input
            starts = [sum(new_parts[:k]) for k in range(len(new_parts))]
            in_index = torch.cat([torch.arange(n) + s for n, s in zip(old_layout[name], starts)])
            w_old, b_old = old_state[f"{name}.weight"], old_state[f"{name}.bias"]
            w, b = state[f"{name}.weight"], state[f"{name}.bias"]
            added = torch.ones(w.shape[1], dtype=torch.bool)
            added[in_index] = False
            w[:, added] = 0.0  # added input channels do not reach any output yet
            w[: w_old.shape[0], in_index] = w_old
            b[: b_old.shape[0]] = b_old
    wide.load_state_dict(state)
    return wide
