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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mcdenoise.choices import DEFAULT_WIDTHS, UNET_WIDTHS
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
                 widths: tuple[int, ...] | list[int] = WIDTHS[DEFAULT_WIDTHS], demodulate: bool = False):
        super().__init__()
        if len(widths) != 5:
            raise ValueError("widths needs 5 entries (4 levels + bottleneck)")
        if demodulate and (in_channels < _ALBEDO.stop or out_channels != _COLOR.stop):
            raise ValueError("demodulate needs a colour+albedo input layout and a colour output")
        c1, c2, c3, c4, c5 = widths
        self.out_channels = out_channels
        self.demodulate = bool(demodulate)
        normal = channel_slices(DEFAULT_INPUTS)["normal"]  # aux channels: albedo, then normal if given
        self._aux_end = normal.stop if in_channels >= normal.stop else _ALBEDO.stop
        extra = _COLOR.stop if demodulate else 0  # the irradiance channels, read after colour
        self.enc1 = nn.ModuleList([_conv(in_channels + extra, c1), _conv(c1, c1)])
        self.enc2 = nn.ModuleList([_conv(c1, c2), _conv(c2, c2)])
        self.enc3 = nn.ModuleList([_conv(c2, c3), _conv(c3, c3)])
        self.enc4 = nn.ModuleList([_conv(c3, c4), _conv(c4, c4)])
        self.mid = nn.ModuleList([_conv(c4, c5), _conv(c5, c5)])
        self.dec4 = nn.ModuleList([_conv(c5 + c4, c4), _conv(c4, c4)])
        self.dec3 = nn.ModuleList([_conv(c4 + c3, c3), _conv(c3, c3)])
        self.dec2 = nn.ModuleList([_conv(c3 + c2, c2), _conv(c2, c2)])
        self.dec1 = nn.ModuleList([_conv(c2 + c1, c1), _conv(c1, c1)])
        # colour residual; with demodulation also the irradiance residual and the mix logit
        self.out = _conv(c1, 2 * out_channels + 1 if demodulate else out_channels)

    @property
    def widths(self) -> list[int]:
        """The five widths it was built with (what add_demodulation, add_inputs and widen rebuild)."""
        return [level[1].out_channels for level in (self.enc1, self.enc2, self.enc3, self.enc4, self.mid)]

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
        y = self._block(self.dec1, torch.cat([F.interpolate(y, scale_factor=2.0, mode="nearest"), s1], 1))
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
    model = ResidualUNet(plain.layout_channels, plain.out_channels, plain.widths, demodulate=True)
    state, old = model.state_dict(), plain.state_dict()
    c = _COLOR.stop
    with torch.no_grad():
        for name, value in old.items():
            if name == "enc1.0.weight":  # [colour | irradiance (new, zero) | guides]
                state[name].zero_()
                state[name][:, :c] = value[:, :c]
                state[name][:, 2 * c :] = value[:, c:]
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
    grown = ResidualUNet(model.layout_channels + extra, model.out_channels, model.widths, demodulate=model.demodulate)
    state = model.state_dict()
    with torch.no_grad():
        first = state["enc1.0.weight"]
        state["enc1.0.weight"] = torch.cat([first, first.new_zeros(first.shape[0], extra, *first.shape[2:])], 1)
    grown.load_state_dict(state)
    return grown


def _conv_inputs(widths: tuple[int, ...] | list[int], in_channels: int) -> dict[str, list[int]]:
    """Per conv (state-dict prefix), the widths of the tensors concatenated into its input, in
    order: what ``forward`` feeds it. Widening needs it to know where a narrow net's input
    channels sit in a wide one's (a decoder's input is [upsampled deeper level, skip])."""
    c = list(widths)
    layout = {"enc1.0": [in_channels], "out": [c[0]]}
    for i, name in enumerate(["enc1", "enc2", "enc3", "enc4", "mid"]):
        if i > 0:
            layout[f"{name}.0"] = [c[i - 1]]
        layout[f"{name}.1"] = [c[i]]
    for i, name in zip([3, 2, 1, 0], ["dec4", "dec3", "dec2", "dec1"]):
        layout[f"{name}.0"] = [c[i + 1], c[i]]
        layout[f"{name}.1"] = [c[i]]
    return layout


def widen(narrow: ResidualUNet, widths: tuple[int, ...] | list[int]) -> ResidualUNet:
    """A wider U-Net that computes exactly what ``narrow`` computes, to train further.

    Training a wide network from scratch costs hours the shipped narrow one already spent; this
    starts the wide one where the narrow one is (Net2Net, Chen et al., ICLR 2016, in its
    zero-init form). Old channels keep their weights; each added channel gets a fresh random
    input filter and zero weight in every conv that reads it, so it changes nothing until
    training gives it a use, and the gradient reaches it through those zero weights at once.
    """
    old_widths = narrow.widths
    if len(widths) != len(old_widths) or any(w < o for w, o in zip(widths, old_widths)):
        raise ValueError(f"cannot widen a U-Net of widths {old_widths} to {list(widths)}: every level must stay or grow")
    in_channels = narrow.enc1[0].in_channels  # irradiance included: the convs' own input widths
    wide = ResidualUNet(narrow.layout_channels, narrow.out_channels, widths, demodulate=narrow.demodulate)
    old_layout, new_layout = _conv_inputs(old_widths, in_channels), _conv_inputs(widths, in_channels)
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
