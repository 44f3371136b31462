"""The three pieces of AdaIN (Huang & Belongie, 2017): encoder f, the AdaIN transform, decoder g.

Stylization is ``g(adain(f(content), f(style)))``. Both networks are ``nn.Sequential`` stacks whose
module indices reproduce the layouts of the widely shared ``vgg_normalised.pth`` and ``decoder.pth``,
so those files load with ``load_state_dict`` as they are.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-5

# Encoder: (in, out) channels of each 3x3 conv up to relu4_1, "M" for a 2x2 max-pool.
VGG_RELU4_1: list[tuple[int, int] | str] = [
    (3, 64), (64, 64), "M",
    (64, 128), (128, 128), "M",
    (128, 256), (256, 256), (256, 256), (256, 256), "M",
    (256, 512),
]  # fmt: skip
# The relu layers whose activations feed the style loss, by their position among the convs.
TAPS = {"relu1_1": 0, "relu2_1": 2, "relu3_1": 4, "relu4_1": 8}

# Decoder: the encoder mirrored, "U" for a 2x nearest-neighbour upsampling.
DECODER: list[tuple[int, int] | str] = [
    (512, 256), "U",
    (256, 256), (256, 256), (256, 256), (256, 128), "U",
    (128, 128), (128, 64), "U",
    (64, 64), (64, 3),
]  # fmt: skip

DecoderNorm = Literal["none", "batch", "instance"]


def pad1(x: Tensor, mode: str = "reflect") -> Tensor:
    """``x`` padded by one pixel on each side, in its own dtype.

    Autocast runs the padding ops in float32, so under bf16/fp16 autocast every activation would be
    copied up before and back down after the pad of each 3x3 conv: about a tenth of a training step.
    """
    with torch.autocast(x.device.type, enabled=False):
        return F.pad(x, (1, 1, 1, 1), mode=mode)


class ReflectionPad(nn.ReflectionPad2d):
    """``nn.ReflectionPad2d(1)`` that keeps its input's dtype under autocast (see ``pad1``)."""

    def __init__(self) -> None:
        super().__init__(1)

    def forward(self, x: Tensor) -> Tensor:
        return pad1(x)


def mean_std(feat: Tensor, eps: float = EPS) -> tuple[Tensor, Tensor]:
    """Per-sample, per-channel mean and standard deviation over H x W, shaped (N, C, 1, 1)."""
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1)
    # at least float32 (bf16 features are not copied first: the deviations come out in float32)
    mean = flat.mean(dim=2, keepdim=True, dtype=torch.promote_types(feat.dtype, torch.float32))
    # two plain passes, several times faster on the CPU than ``Tensor.var`` (Welford's update), and
    # as accurate: the deviations are taken from the mean, not from zero
    var = (flat - mean).square().sum(dim=2) / (flat.shape[2] - 1) + eps
    return mean.view(n, c, 1, 1), var.sqrt().view(n, c, 1, 1)


def adain_stats(content: Tensor, style_mean: Tensor, style_std: Tensor) -> Tensor:
    """AdaIN with the style given by its statistics: sigma(y) * (x - mu(x)) / sigma(x) + mu(y)."""
    c_mean, c_std = mean_std(content)
    out = (content.float() - c_mean) / c_std * style_std + style_mean
    return out.to(content.dtype)


def adain(content: Tensor, style: Tensor) -> Tensor:
    """Adaptive instance normalisation of ``content`` features to the statistics of ``style``."""
    return adain_stats(content, *mean_std(style))


class Encoder(nn.Sequential):
    """Normalised VGG-19 up to relu4_1, taking RGB in [0, 1].

    Module 0 is a 1x1 conv mapping RGB in [0, 1] to Caffe's BGR*255 minus the ImageNet mean; every
    3x3 conv is reflection padded and max-pools round up (``ceil_mode``), as in the Lua original.
    """

    def __init__(self) -> None:
        layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
        tap_index: dict[str, int] = {}
        conv = 0
        for item in VGG_RELU4_1:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
                continue
            c_in, c_out = item
            layers += [ReflectionPad(), nn.Conv2d(c_in, c_out, 3), nn.ReLU(inplace=True)]
            tap_index.update({name: len(layers) - 1 for name, at in TAPS.items() if at == conv})
            conv += 1
        super().__init__(*layers)
        self.tap_index = tap_index

    def taps(self, x: Tensor) -> list[Tensor]:
        """Activations at relu1_1, relu2_1, relu3_1 and relu4_1, in that order."""
        return taps(self, x)


def taps(encoder: nn.Sequential, x: Tensor) -> list[Tensor]:
    """The activations an ``Encoder``, or a rewritten copy of one, names in its ``tap_index``."""
    wanted = set(encoder.tap_index.values())
    out = []
    for i, layer in enumerate(encoder):
        x = layer(x)
        if i in wanted:
            out.append(x)
    return out


def _norm_layer(kind: DecoderNorm, channels: int) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm2d(channels)]
    if kind == "instance":
        return [nn.InstanceNorm2d(channels, affine=True)]
    return []


class Decoder(nn.Sequential):
    """Mirror of the encoder: reflection-padded 3x3 convs, ReLUs, nearest-neighbour upsampling.

    Maps relu4_1-shaped features to RGB (unclamped, nominally [0, 1]). ``norm`` adds BatchNorm or
    InstanceNorm after each hidden conv, for the paper's ablation (both hurt); the default, none,
    keeps the standard ``decoder.pth`` key layout.
    """

    def __init__(self, norm: DecoderNorm = "none") -> None:
        layers: list[nn.Module] = []
        n_convs = sum(item != "U" for item in DECODER)
        conv = 0
        for item in DECODER:
            if item == "U":
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
                continue
            c_in, c_out = item
            layers += [ReflectionPad(), nn.Conv2d(c_in, c_out, 3)]
            conv += 1
            if conv < n_convs:  # the output conv has neither norm nor relu
                layers += [*_norm_layer(norm, c_out), nn.ReLU(inplace=True)]
        super().__init__(*layers)
        self.norm = norm


def encoder_keys() -> dict[str, tuple[int, ...]]:
    """Expected key -> shape of an encoder state dict."""
    return {k: tuple(v.shape) for k, v in Encoder().state_dict().items()}


def decoder_keys(norm: DecoderNorm = "none") -> dict[str, tuple[int, ...]]:
    """Expected key -> shape of a decoder state dict."""
    return {k: tuple(v.shape) for k, v in Decoder(norm).state_dict().items()}


# -- inference rewrite -------------------------------------------------------------------------


PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))


def _fold_taps(weight: Tensor, dim: int, phase: int) -> Tensor:
    """The 3 taps of a 3x3 kernel along ``dim`` folded onto the 2 low-resolution pixels that an
    upsampled output pixel of this phase sees: phase 0 reads rows (i-1, i, i), phase 1 (i, i, i+1)."""
    w0, w1, w2 = weight.unbind(dim)
    return torch.stack((w0, w1 + w2) if phase == 0 else (w0 + w1, w2), dim)


def upsample_phase_kernels(weight: Tensor) -> Tensor:
    """The 2x2 kernels of the four output phases of ``conv(pad(upsample_2x(x)))`` (see
    ``UpsampleConv``), stacked along the output channels in the order (0, 0), (0, 1), (1, 0), (1, 1)."""
    phases = []
    for a in (0, 1):
        rows = _fold_taps(weight, 2, a)
        phases += [_fold_taps(rows, 3, b) for b in (0, 1)]
    return torch.cat(phases)


class UpsampleConv(nn.Module):
    """``conv(reflection_pad(upsample_2x(x)))`` computed at the low resolution, with the same result.

    After nearest upsampling each output pixel's 3x3 window covers only 2x2 distinct input pixels, so
    each of the four output phases is a 2x2 conv of ``x``: 16 multiply-adds per input pixel and channel
    pair instead of 36, and the 4x larger upsampled image is never made. Reflecting the upsampled
    image by one pixel repeats its edge, which is replication padding of ``x``. The four phases run
    as one conv with four times the output channels; phase (a, b) of output pixel (i, j) is that
    conv's output at (i + a, j + b), and interleaving them is two stacks (cheap to differentiate,
    unlike strided writes into a preallocated output).
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv  # shared, so the fused copy follows any later change to the weights

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        c = self.conv.out_channels
        bias = None if self.conv.bias is None else self.conv.bias.repeat(4)
        kernels = upsample_phase_kernels(self.conv.weight).contiguous(memory_format=torch.channels_last)
        phases = F.conv2d(pad1(x, "replicate"), kernels, bias).permute(0, 2, 3, 1)  # N, H+1, W+1, 4C
        part = [phases[:, a : a + h, b : b + w, (2 * a + b) * c : (2 * a + b + 1) * c] for a, b in PHASES]
        rows = [torch.stack((part[2 * a], part[2 * a + 1]), dim=3) for a in (0, 1)]  # N, H, W, 2, C
        out = torch.stack(rows, dim=2).view(n, 2 * h, 2 * w, c)  # N, H, 2, W, 2, C interleaves
        return out.permute(0, 3, 1, 2)  # channels_last NCHW


def fuse_upsampling(decoder: Decoder) -> nn.Sequential:
    """A copy of ``decoder`` with every upsample -> pad -> conv run as ``UpsampleConv`` (2.25x fewer
    multiply-adds in those three convs); the other layers are shared, not copied, so training the
    copy trains ``decoder``."""
    layers, fused = list(decoder), []
    i = 0
    while i < len(layers):
        window = layers[i : i + 3]
        kinds = (nn.Upsample, nn.ReflectionPad2d, nn.Conv2d)
        if len(window) == 3 and all(
            isinstance(layer, kind) for layer, kind in zip(window, kinds, strict=False)
        ):
            fused.append(UpsampleConv(window[2]))  # type: ignore[arg-type]
            i += 3
        else:
            fused.append(layers[i])
            i += 1
    return nn.Sequential(*fused)
