"""The three pieces of AdaIN (Huang & Belongie, 2017): encoder f, the AdaIN transform, decoder g.

Stylization is ``g(adain(f(content), f(style)))``. Both networks are ``nn.Sequential`` stacks whose
module indices reproduce the layouts of the widely shared ``vgg_normalised.pth`` and ``decoder.pth``,
so those files load with ``load_state_dict`` as they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
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
TAP_CHANNELS = (64, 128, 256, 512)  # the channels of each of TAPS, in order

# Decoder: the encoder mirrored, "U" for a 2x nearest-neighbour upsampling.
DECODER: list[tuple[int, int] | str] = [
    (512, 256), "U",
    (256, 256), (256, 256), (256, 256), (256, 128), "U",
    (128, 128), (128, 64), "U",
    (64, 64), (64, 3),
]  # fmt: skip

DecoderNorm = Literal["none", "batch", "instance"]
WidenMode = Literal["copy", "fresh"]
DECODER_IN, DECODER_OUT = DECODER[0][0], DECODER[-1][1]  # type: ignore[index]
# a width is a multiple of 1/64, so that every hidden layer's channels (64 to 256, times the width)
# stay whole numbers; the paper's decoder is width 1
MAX_DECODER_WIDTH = 4.0


def decoder_layout(width: float = 1.0) -> list[tuple[int, int] | str]:
    """``DECODER`` with every hidden layer's channels times ``width`` (the input, relu4_1's 512, and
    the output, RGB, stay)."""
    check_decoder_width(width)

    def scaled(channels: int) -> int:
        return channels if channels in (DECODER_IN, DECODER_OUT) else round(channels * width)

    return [item if item == "U" else (scaled(item[0]), scaled(item[1])) for item in DECODER]  # type: ignore[index]


def check_decoder_width(width: float) -> None:
    if not (1.0 <= width <= MAX_DECODER_WIDTH and float(width * 64).is_integer()):
        raise ValueError(
            f"a decoder width must be a multiple of 1/64 from 1 to {MAX_DECODER_WIDTH:g}, not {width:g}"
        )


def width_of(state: dict[str, Tensor]) -> float:
    """The width of a decoder state dict, from its first conv's output channels."""
    first = state.get("1.weight")
    return 1.0 if first is None else first.shape[0] / DECODER[0][1]  # type: ignore[index]


def pad1(x: Tensor, mode: str = "reflect") -> Tensor:
    """``x`` padded by one pixel on each side, in its own dtype.

    Autocast runs the padding ops in float32, so under bf16/fp16 autocast every activation would be
    copied up before and back down after the pad of each 3x3 conv, a sizeable part of a training step.
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
    mean, std = _MeanStd.apply(feat.reshape(n, c, -1), eps)
    return mean.view(n, c, 1, 1), std.view(n, c, 1, 1)


class _MeanStd(torch.autograd.Function):
    """Mean and unbiased std over the last dim, in at least float32, with a one-expression gradient.

    Two plain passes (mean, then squared deviations from it) are several times faster on the CPU
    than ``Tensor.var`` (Welford's update) and as accurate. Written out, the gradient is one pass,
    ``g_mean / n + g_std * (x - mean) / ((n - 1) * std)``, where autograd would chain six.
    """

    @staticmethod
    def forward(ctx, flat: Tensor, eps: float) -> tuple[Tensor, Tensor]:
        count = flat.shape[-1]
        # bf16 features are not copied up first: the deviations come out in float32
        mean = flat.mean(dim=-1, keepdim=True, dtype=torch.promote_types(flat.dtype, torch.float32))
        std = ((flat - mean).square().sum(dim=-1, keepdim=True) / (count - 1) + eps).sqrt()
        ctx.save_for_backward(flat, mean, std)
        return mean, std

    @staticmethod
    def backward(ctx, grad_mean: Tensor | None, grad_std: Tensor | None) -> tuple[Tensor, None]:
        flat, mean, std = ctx.saved_tensors
        count = flat.shape[-1]
        grad_mean = torch.zeros_like(mean) if grad_mean is None else grad_mean
        grad_std = torch.zeros_like(std) if grad_std is None else grad_std
        grad = torch.addcmul(grad_mean / count, flat - mean, grad_std / ((count - 1) * std))
        return grad.to(flat.dtype), None


Stats = tuple[Tensor, Tensor]  # per-channel (mean, std), each (N, C, 1, 1)


def blend(stats: Sequence[Stats], weights: Sequence[float]) -> Stats:
    """Several styles' (mean, std) mixed by ``weights`` (summing to 1): the paper's style
    interpolation, a weighted sum of the statistics."""
    mean = sum(w * m for w, (m, _) in zip(weights, stats, strict=True))
    std = sum(w * s for w, (_, s) in zip(weights, stats, strict=True))
    return mean, std


def std_from_sums(total: Tensor, squares: Tensor, count: int, eps: float = EPS) -> Tensor:
    """The std ``mean_std`` gives, from running sums (per-channel sum and sum of squares over
    ``count`` positions): how the statistics of an image too large to encode at once are gathered."""
    mean = total / count
    return (((squares - total * mean) / (count - 1)).clamp_min(0) + eps).sqrt()


def normalise(features: Tensor, content: Stats, style: Stats) -> Tensor:
    """The AdaIN formula with the statistics given: sigma(y) * (x - mu(x)) / sigma(x) + mu(y)."""
    return (features.float() - content[0]) / content[1] * style[1] + style[0]


def adain_stats(content: Tensor, style_mean: Tensor, style_std: Tensor) -> Tensor:
    """AdaIN with the style given by its statistics."""
    return normalise(content, mean_std(content), (style_mean, style_std)).to(content.dtype)


def feedback_targets(target: Stats, made: Stats | None, share: float) -> Stats:
    """The target moved by ``share`` of what an output painted from it missed: the decoder shrinks
    styles towards an average one (its output's relu4_1 means and stds follow the target's with a
    slope below 1), so asking for more than the style lands nearer to it. The means move by the
    difference, the stds by the ratio (held to [1/2, 2], as a flat output channel would ask for any
    amount). ``made`` None (an empty mask region) keeps the target."""
    if made is None:
        return target
    (mean, std), (made_mean, made_std) = target, made
    return mean + share * (mean - made_mean), std * (std / made_std).clamp(0.5, 2.0) ** share


def adain(content: Tensor, style: Tensor) -> Tensor:
    """Adaptive instance normalisation of ``content`` features to the statistics of ``style``."""
    return adain_stats(content, *mean_std(style))


def adain_regions(
    features: Tensor, content: list[Stats | None], style: list[Stats], labels: Tensor | None = None
) -> Tensor:
    """AdaIN with given statistics, per region when ``labels`` (1, 1, h, w) gives each position's
    region, as in the Lua original's masks; a region without statistics (too small) keeps its
    features. Statistics come from the whole image, so a tile of it is transformed like the whole."""
    out = features
    for k, (content_k, style_k) in enumerate(zip(content, style, strict=True)):
        if content_k is None:
            continue
        moved = normalise(features, content_k, style_k)
        out = moved if labels is None else torch.where(labels == k, moved, out)
    return out


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


def taps(encoder: nn.Sequential, x: Tensor, dtype: torch.dtype | None = None) -> list[Tensor]:
    """The activations an ``Encoder``, or a rewritten copy of one, names in its ``tap_index``. With
    ``dtype``, the layers after relu1_1 run under autocast to it (as ``backend.Autocast`` runs the
    pipeline's encoder) and each activation comes back in float32, for statistics and losses."""
    wanted = set(encoder.tap_index.values())
    # without a dtype, whatever arithmetic the caller set up (a trainer's autocast) holds
    low_from = len(encoder) if dtype is None else encoder.tap_index["relu1_1"] + 1
    out = []
    for i, layer in enumerate(encoder):
        with torch.autocast(x.device.type, dtype=dtype) if i >= low_from else contextlib.nullcontext():
            x = layer(x)
        if i in wanted:
            out.append(x if dtype is None else x.float())
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
    keeps the standard ``decoder.pth`` key layout. ``width`` multiplies the hidden layers' channels
    (``decoder_layout``); 1, the default, is the paper's decoder, and a wider one starts from a
    trained narrow one with ``widen_decoder``.
    """

    def __init__(self, norm: DecoderNorm = "none", width: float = 1.0) -> None:
        layers: list[nn.Module] = []
        layout = decoder_layout(width)
        n_convs = sum(item != "U" for item in layout)
        conv = 0
        for item in layout:
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
        self.width = width
        # the module index of each ReLU, in order: where ``run_decoder`` stops or changes activations
        self.relu_index = [i for i, layer in enumerate(self) if isinstance(layer, nn.ReLU)]


def run_decoder(
    net: nn.Module,
    x: Tensor,
    after_relu: Callable[[int, Tensor], Tensor] | None = None,
    stop_at: int | None = None,
) -> Tensor:
    """``net(x)`` for a ``Decoder`` or a rewritten copy of one (its ``relu_index`` carried over),
    with ``after_relu(k, activations)`` replacing the activations of its k-th ReLU (counted from
    0 at relu4_1's end); with ``stop_at``, the activations of that ReLU as they come out of it.
    A wrapper such as ``backend.Autocast`` passes both on to the network it wraps."""
    if not isinstance(net, nn.Sequential):
        return net(x, after_relu=after_relu, stop_at=stop_at)
    relu_of = {i: k for k, i in enumerate(net.relu_index)}
    for i, layer in enumerate(net):
        x = layer(x)
        k = relu_of.get(i)
        if k is None:
            continue
        if k == stop_at:
            return x
        if after_relu is not None:
            x = after_relu(k, x)
    return x


def carry_indices(source: nn.Sequential, fast: nn.Sequential, last_source: Sequence[int]) -> None:
    """An encoder's ``tap_index`` and a decoder's ``relu_index`` given to ``fast``, a rewrite of
    ``source`` whose layer ``j`` stands for source layers up to ``last_source[j]``."""
    new_index = {old: new for new, old in enumerate(last_source)}
    if hasattr(source, "tap_index"):
        fast.tap_index = {name: new_index[old] for name, old in source.tap_index.items()}
    if hasattr(source, "relu_index"):
        fast.relu_index = [new_index[old] for old in source.relu_index]


@torch.no_grad()
def widen_decoder(
    narrow: Decoder, width: float, noise: float = 0.1, seed: int = 0, mode: WidenMode = "copy"
) -> Decoder:
    """A decoder of ``width`` that computes what ``narrow`` computes, so that training it starts
    where the narrow one stands. The old channels keep their indices; the new ones follow them.

    ``copy`` (Net2Net's widening, Chen et al. 2016): each hidden conv's new output channels copy
    randomly chosen old ones (weights, bias and any normalisation parameters), and the next conv's
    weights on the copies of a channel share that channel's old weights between them. Copies with
    the same incoming weights would get the same gradients and never part, so the shares differ:
    each copy gets its share plus noise (``noise`` times the layer's weight std) that sums to zero
    over the copies of a channel, which keeps the function exact.

    ``fresh``: the new channels are freshly initialised (seeded), and every weight from a new
    channel to an old one is zero. Nothing is shared, so nothing has to part; the new channels
    start to count as those zero weights grow (``new_channels`` names them, for their own rate).
    """
    if width < narrow.width:
        raise ValueError(f"cannot widen a decoder of width {narrow.width:g} to {width:g}")
    device = next(narrow.parameters()).device
    if mode == "fresh":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            wide = Decoder(narrow.norm, width)
        return _embed(narrow, wide.to(device))
    wide = Decoder(narrow.norm, width).to(device)
    generator = torch.Generator().manual_seed(seed)
    old = [m for m in narrow if isinstance(m, nn.Conv2d)]
    new = [m for m in wide if isinstance(m, nn.Conv2d)]
    norms_old = [m for m in narrow if isinstance(m, nn.BatchNorm2d | nn.InstanceNorm2d)]
    norms_new = [m for m in wide if isinstance(m, nn.BatchNorm2d | nn.InstanceNorm2d)]
    source = torch.arange(old[0].in_channels)  # which old input channel each new one copies
    for k, (was, conv) in enumerate(zip(old, new, strict=True)):
        counts = torch.bincount(source, minlength=was.in_channels).to(was.weight.dtype)
        weight = was.weight[:, source] / counts[source].view(1, -1, 1, 1)
        if k > 0 and noise and len(source) > was.in_channels:
            jitter = torch.randn(weight.shape, generator=generator).to(weight) * noise * was.weight.std()
            group_mean = torch.zeros_like(was.weight).index_add_(1, source, jitter) / counts.view(1, -1, 1, 1)
            weight = weight + jitter - group_mean[:, source]
        extra = conv.out_channels - was.out_channels
        picks = torch.randperm(was.out_channels, generator=generator)[: extra % was.out_channels]
        out = torch.cat([torch.arange(was.out_channels)] * (1 + extra // was.out_channels) + [picks])
        conv.weight.copy_(weight[out])
        conv.bias.copy_(was.bias[out])
        if k < len(norms_old):
            for name, value in norms_old[k].state_dict().items():
                target = norms_new[k].state_dict()[name]
                target.copy_(value[out] if value.dim() == 1 else value)
        source = out
    return wide


def _leading(shape: torch.Size) -> tuple[slice, ...]:
    """The index of a narrow tensor's entries inside its widened twin: the old channels lead."""
    return tuple(slice(0, n) for n in shape)


@torch.no_grad()
def _embed(narrow: Decoder, wide: Decoder) -> Decoder:
    """``wide`` with ``narrow``'s parameters in its leading channels and zero weights from its
    other channels into those, so that it computes what ``narrow`` does."""
    state = wide.state_dict()
    for name, value in narrow.state_dict().items():
        if value.dim() == 4:  # a conv's weights: none from the new input channels into the old outputs
            state[name][: value.shape[0], value.shape[1] :] = 0
        state[name][_leading(value.shape)] = value
    return wide


def new_channels(decoder: Decoder, narrow_width: float = 1.0) -> dict[str, Tensor]:
    """For each parameter of ``decoder``, a mask of the entries that a decoder of ``narrow_width``
    widened to it (``widen_decoder``) added: those of the new channels and the weights between
    them and the old ones."""
    narrow = dict(Decoder(decoder.norm, narrow_width).named_parameters())
    masks = {}
    for name, value in decoder.named_parameters():
        mask = torch.ones_like(value, dtype=torch.bool)
        mask[_leading(narrow[name].shape)] = False
        masks[name] = mask
    return masks


def encoder_keys() -> dict[str, tuple[int, ...]]:
    """Expected key -> shape of an encoder state dict."""
    return {k: tuple(v.shape) for k, v in Encoder().state_dict().items()}


def decoder_keys(norm: DecoderNorm = "none", width: float = 1.0) -> dict[str, tuple[int, ...]]:
    """Expected key -> shape of a decoder state dict."""
    return {k: tuple(v.shape) for k, v in Decoder(norm, width).state_dict().items()}


# -- fused upsampling (inference and training) ------------------------------------------------


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
    conv's output at (i + a, j + b) (``_InterleavePhases``).
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv  # shared, so the fused copy follows any later change to the weights

    def forward(self, x: Tensor) -> Tensor:
        return upsample_conv(x, self.conv)


def upsample_conv(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """``UpsampleConv(conv)(x)``, for callers holding the conv alone."""
    bias = None if conv.bias is None else conv.bias.repeat(4)
    kernels = upsample_phase_kernels(conv.weight).contiguous(memory_format=torch.channels_last)
    phases = F.conv2d(pad1(x, "replicate"), kernels, bias)
    return _InterleavePhases.apply(phases.permute(0, 2, 3, 1))


class _InterleavePhases(torch.autograd.Function):
    """(N, H+1, W+1, 4C) phase outputs -> the (N, C, 2H, 2W) image (channels_last): output pixel
    (2i + a, 2j + b) is phase (a, b)'s channel block at (i + a, j + b).

    Written out because autograd's version (four slices, then stacks) would give every slice its
    own zero-filled gradient of the whole input and add the four up; here the blocks are disjoint
    and the gradient is one zero fill and four copies.
    """

    @staticmethod
    def forward(ctx, phases: Tensor) -> Tensor:
        n, h, w, c = phases.shape[0], phases.shape[1] - 1, phases.shape[2] - 1, phases.shape[3] // 4
        out = torch.empty((n, c, 2 * h, 2 * w), dtype=phases.dtype, device=phases.device,
                          memory_format=torch.channels_last)  # fmt: skip
        grid = out.permute(0, 2, 3, 1).view(n, h, 2, w, 2, c)
        for k, (a, b) in enumerate(PHASES):
            grid[:, :, a, :, b] = phases[:, a : a + h, b : b + w, k * c : (k + 1) * c]
        ctx.phase_shape = phases.shape
        return out  # not a view: the in-place ReLU after it may write to it

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        n, h1, w1, c4 = ctx.phase_shape
        h, w, c = h1 - 1, w1 - 1, c4 // 4
        grad = grad.permute(0, 2, 3, 1).reshape(n, h, 2, w, 2, c)
        grad_phases = grad.new_zeros(ctx.phase_shape)
        for k, (a, b) in enumerate(PHASES):
            grad_phases[:, a : a + h, b : b + w, k * c : (k + 1) * c] = grad[:, :, a, :, b]
        return grad_phases


def fuse_upsampling(decoder: Decoder) -> nn.Sequential:
    """A copy of ``decoder`` with every upsample -> pad -> conv run as ``UpsampleConv`` (2.25x fewer
    multiply-adds in those three convs); the other layers are shared, not copied, so training the
    copy trains ``decoder``."""
    layers, fused, last_source = list(decoder), [], []
    i = 0
    while i < len(layers):
        window = layers[i : i + 3]
        kinds = (nn.Upsample, nn.ReflectionPad2d, nn.Conv2d)
        if len(window) == 3 and all(
            isinstance(layer, kind) for layer, kind in zip(window, kinds, strict=True)
        ):
            fused.append(UpsampleConv(window[2]))  # type: ignore[arg-type]
            i += 3
        else:
            fused.append(layers[i])
            i += 1
        last_source.append(i - 1)
    fast = nn.Sequential(*fused)
    carry_indices(decoder, fast, last_source)
    return fast
