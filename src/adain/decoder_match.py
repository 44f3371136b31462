"""AdaIN on the decoder's own activations: the ``decoder_match`` option (issue 14).

The decoder sees a style only through relu4_1's channel means and stds, and paints the finer scales
from what it learned of styles in general. Decoding the style's own features, ``g(f(s))``, shows
what its layers hold for this style: each ReLU's channel mean and std (``decoder_statistics``,
kept in ``StyleCode.decoder``). Decoding a stylized target, each chosen ReLU's activations then
move a share of the way to those statistics: AdaIN again, as a per-channel scale and shift
measured on the whole image (``layer_map``), clamped at zero as a ReLU's output is.

Measured on the paper's 220 pairs at 512² (``benchmarks/decoder_matching.py``): layers 0 and 6 at
share 0.75 lower the style loss 8.7 % for 0.8 % more content loss; README, "Decoder match".

With ``covariance``, a chosen ReLU moves to the style pass's channel means and covariance instead,
whitened and coloured as WCT does at relu4_1 (``covariance_map``: a C x C matrix where AdaIN has a
per-channel scale): the style's decoder statistics then keep each chosen layer's covariance too.

The maps are the whole image's, measured after the earlier layers have moved, so an image in tiles
comes out as it does whole: ``gather_maps`` measures each chosen layer over the tile cores, one
pass over the tiles per chosen layer, before the tiles are painted.

``MatchingDecoder`` is the same arithmetic as one graph with tensors for inputs, for the exported
models (``decoder_match.onnx``): ONNX Runtime and the page's browser mode run it where no hook
can reach the decoder's ReLUs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import defaults
from .errors import AdainError
from .nets import EPS, Stats, blend, mean_std, run_decoder
from .tiling import Tile, content_statistics, gather_statistics, repeat_labels

RELUS = 8  # the decoder's ReLUs, numbered from 0 at relu4_1's end
# each ReLU's resolution over relu4_1's (the image's is 8): 0 at 1/8, 1-4 at 1/4, 5-6 at 1/2, 7 whole
RELU_SCALE = (1, 2, 2, 2, 2, 4, 4, 8)
DEFAULT_LAYERS = defaults.DECODER_MATCH_LAYERS

COVARIANCE_TORCH_ONLY = (
    "the decoder match's covariance runs on the torch backend only (the exported models move each "
    "channel's mean and std): use --backend torch or --no-decoder-match-covariance"
)
WHOLE_IMAGES_ONLY = (
    "decoder_match with the onnx backend paints an image whole, and this one needs tiles: "
    "give it more memory (--max-memory) or use the torch backend"
)

# per-channel (scale, shift), each (1, C, 1, 1); or, for the covariance match, (matrix (C, C), shift)
Map = tuple[Tensor, Tensor]
Moments = tuple[Tensor, Tensor]  # channel mean (1, C, 1, 1) and covariance (C, C), float64
ImageMaps = list[Map | None]  # per mask region; None: the region keeps its activations


def check_layers(layers: Sequence[int]) -> tuple[int, ...]:
    """Distinct ReLU numbers from 0 to 7, sorted: the layers a match may move."""
    chosen = tuple(sorted(set(layers)))
    if not chosen or any(isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < RELUS for k in chosen):
        raise AdainError(
            f"decoder match layers are the decoder's ReLUs, 0 to {RELUS - 1}, got {list(layers)}"
        )
    return chosen


def relu_channels(decoder: nn.Module) -> list[int]:
    """The channels of each of a decoder's ReLUs (each follows one of its convolutions)."""
    return [m.out_channels for m in decoder.modules() if isinstance(m, nn.Conv2d)][:RELUS]


def decoder_statistics(decode: nn.Module, features: Tensor) -> tuple[Stats, ...]:
    """Each of the decoder's ReLUs' channel (mean, std) decoding ``features`` (a style's relu4_1)."""
    return decoder_moments(decode, features)[0]


def decoder_moments(
    decode: nn.Module, features: Tensor, covariance_at: Sequence[int] = ()
) -> tuple[tuple[Stats, ...], tuple[Tensor | None, ...] | None]:
    """``decoder_statistics``, and with ``covariance_at`` the channel covariance of those ReLUs
    (None at the others; None for all without ``covariance_at``), in the same pass."""
    if covariance_at and hasattr(decode, "matching"):
        raise AdainError(COVARIANCE_TORCH_ONLY)
    if hasattr(decode, "matching"):  # an exported decoder: the statistics are its graph's outputs
        match = DecoderMatch((), [[()]] * len(features), [0.0] * len(features))
        measured = decode.matching(features, match.graph_inputs(None, features.shape[-2:]))[1:]
        return tuple(
            (mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1))
            for mean, std in zip(measured[::2], measured[1::2], strict=True)
        ), None
    stats: list[Stats] = []
    covariances: list[Tensor | None] = []

    def keep(k: int, x: Tensor) -> Tensor:
        stats.append(mean_std(x))
        covariances.append(mean_covariance(x)[1] if k in covariance_at else None)
        return x

    run_decoder(decode, features, keep)
    return tuple(stats), (tuple(covariances) if covariance_at else None)


def mean_covariance(x: Tensor) -> Moments:
    """One image's (1, C, H, W) channel means and covariance over its positions, in float64."""
    flat = x[0].reshape(x.shape[1], -1).double()
    mean = flat.mean(dim=1, keepdim=True)
    centred = flat - mean
    return mean.view(1, -1, 1, 1), centred @ centred.T / max(flat.shape[1] - 1, 1)


def psd_power(matrix: Tensor, power: float) -> Tensor:
    """A covariance matrix to ``power`` through its eigenvalues, each held at no less than a
    millionth of the largest: a ReLU's dead channels have none, and their directions would blow up."""
    values, vectors = torch.linalg.eigh(matrix)
    values = values.clamp_min(values.max().clamp_min(0) * 1e-6 + 1e-12)
    return (vectors * values.pow(power)) @ vectors.T


def layer_map(own: Stats | None, target: Stats) -> Map | None:
    """The per-channel scale and shift that give activations of statistics ``own`` the statistics
    ``target`` (None: a region too small to have statistics)."""
    if own is None:
        return None
    scale = target[1] / own[1]
    return scale, target[0] - own[0] * scale


def covariance_map(own: Moments | None, target: Moments) -> Map | None:
    """The matrix and shift that give activations of moments ``own`` the mean and covariance
    ``target`` (``T^(1/2) O^(-1/2)``, whitening then colouring; None: a region too small)."""
    if own is None:
        return None
    matrix = psd_power(target[1].double(), 0.5) @ psd_power(own[1].double(), -0.5)
    shift = target[0].double().view(-1) - matrix @ own[0].double().view(-1)
    return matrix.float(), shift.float().view(1, -1, 1, 1)


def labels_at(labels: Tensor | None, k: int) -> Tensor | None:
    """Region labels at relu4_1's resolution brought to ReLU ``k``'s, as the decoder upsamples."""
    return None if labels is None else repeat_labels(labels, RELU_SCALE[k])


def move(x: Tensor, maps: ImageMaps, share: float, labels: Tensor | None) -> Tensor:
    """One image's (1, C, h, w) activations moved ``share`` of the way through each region's map."""
    out = x
    for region, found in enumerate(maps):
        if found is None or not share:
            continue
        scale, shift = found
        flat = x.float()
        if scale.dim() == 2:  # the covariance match's matrix
            mapped = torch.einsum("dc,nchw->ndhw", scale, flat) + shift
        else:
            mapped = torch.addcmul(shift, flat, scale)
        moved = torch.lerp(flat, mapped.clamp_min(0), share).to(x.dtype)
        out = moved if labels is None else torch.where(labels == region, moved, out)
    return out


def style_layers(
    codes: Sequence[object], layers: tuple[int, ...], channels: Sequence[int], covariance: bool = False
) -> list[tuple[Stats, ...]]:
    """Each encoded style's statistics at ``layers`` (with ``covariance``, its (mean, covariance)),
    refused in one line where it has none or they are another decoder's (``channels``: this
    decoder's ReLUs')."""
    found = []
    for code in codes:
        name = getattr(code, "name", "style")
        stats = getattr(code, "decoder", None)
        if stats is None:
            raise AdainError(
                f"style {name!r} was encoded without the decoder statistics that decoder_match needs: "
                "encode the style image with a matching stylizer (with_options(decoder_match=S).encode_style)"
            )
        if [mean.shape[1] for mean, _ in stats] != list(channels):
            raise AdainError(f"style {name!r} has another decoder's statistics: encode the style image again")
        if not covariance:
            found.append(tuple(stats[k] for k in layers))
            continue
        covariances = getattr(code, "decoder_covariance", None) or (None,) * RELUS
        if any(covariances[k] is None for k in layers):
            raise AdainError(
                f"style {name!r} was encoded without the decoder covariances at ReLUs "
                f"{','.join(map(str, layers))} that the covariance match needs: encode the style image "
                "with a stylizer that has it (with_options(decoder_match_covariance=True))"
            )
        found.append(tuple((stats[k][0], covariances[k]) for k in layers))
    return found


def blend_moments(moments: Sequence[Moments], shares: Sequence[float]) -> Moments:
    """Several styles' (mean, covariance) mixed by ``shares``, each part weighed as ``blend`` weighs
    a (mean, std)."""
    mean = sum(w * m for w, (m, _) in zip(shares, moments, strict=True))
    cov = sum(w * c for w, (_, c) in zip(shares, moments, strict=True))
    return mean, cov  # type: ignore[return-value]


@dataclass(frozen=True)
class DecoderMatch:
    """What one decoding matches: the chosen ReLUs, per image of the batch and per mask region the
    styles' statistics at each of them (with ``covariance``, their mean and covariance), and the
    share each image moves (the option times its alpha)."""

    layers: tuple[int, ...]
    targets: list[list[tuple[Stats, ...]]]  # [image][region][j] for layers[j]
    shares: list[float]
    covariance: bool = False

    @classmethod
    def for_styles(
        cls,
        layers: tuple[int, ...],
        codes: Sequence[Sequence[object]],
        shares_of_styles: Sequence[Sequence[float]] | None,
        shares: Sequence[float],
        channels: Sequence[int],
        covariance: bool = False,
    ) -> DecoderMatch:
        """Per image, its styles' statistics: blended by ``shares_of_styles[i]`` (as relu4_1's are),
        or with None one per mask region; ``channels``: the decoder's ReLUs'."""
        mix = blend_moments if covariance else blend
        targets = []
        for i, image_codes in enumerate(codes):
            per_style = style_layers(image_codes, layers, channels, covariance)
            if shares_of_styles is None:
                targets.append(per_style)
                continue
            mixed = tuple(
                mix([stats[j] for stats in per_style], shares_of_styles[i]) for j in range(len(layers))
            )
            targets.append([mixed])
        return cls(layers, targets, list(shares), covariance)

    def images(self, start: int, stop: int) -> DecoderMatch:
        """The match of images ``start`` to ``stop`` of the batch."""
        return replace(self, targets=self.targets[start:stop], shares=self.shares[start:stop])

    def maps(self, k: int, own: list[list[Stats | None]]) -> list[ImageMaps]:
        """Per image and region, the map of ReLU ``k`` from the activations' own statistics (their
        mean and covariance for the covariance match)."""
        j = self.layers.index(k)
        map_of = covariance_map if self.covariance else layer_map
        return [
            [map_of(stats, target[j]) for stats, target in zip(image_own, image_targets, strict=True)]
            for image_own, image_targets in zip(own, self.targets, strict=True)
        ]

    def decode(
        self,
        decode: nn.Module,
        t: Tensor,
        labels: Tensor | None,
        fixed: dict[int, list[ImageMaps]] | None = None,
        stop_at: int | None = None,
    ) -> Tensor:
        """``decode(t)`` with each chosen ReLU moved: by the ``fixed`` maps where given (tiles), else
        by maps measured on these activations (a whole image). ``stop_at``: as ``run_decoder``."""
        if hasattr(decode, "matching"):  # an exported decoder: the match inside its graph, on a whole image
            if self.covariance:
                raise AdainError(COVARIANCE_TORCH_ONLY)
            if fixed is not None or stop_at is not None:
                raise AdainError(WHOLE_IMAGES_ONLY)
            return decode.matching(t, self.graph_inputs(labels, t.shape[-2:]))[0]
        regions = len(self.targets[0])

        def after_relu(k: int, x: Tensor) -> Tensor:
            if k not in self.layers:
                return x
            labels_k = labels_at(labels, k)
            if fixed is not None and k in fixed:
                maps = fixed[k]
            else:
                maps = self.maps(k, content_statistics(x, regions, labels_k, self.covariance))
            moved = [move(x[i : i + 1], maps[i], self.shares[i], labels_k) for i in range(len(x))]
            return torch.cat(moved)

        return run_decoder(decode, t, after_relu, stop_at)

    def gather_maps(
        self,
        target_of_tile: Callable[[Tile], Tensor],
        decode: nn.Module,
        tiles: list[Tile],
        labels: Tensor | None,
        bar: object = None,
    ) -> dict[int, list[ImageMaps]]:
        """The whole image's maps, measured over the tile cores: for each chosen ReLU in turn, every
        tile's target (``target_of_tile``: the AdaIN output of its context) decoded to that ReLU
        with the earlier layers moved, its core's activations summed per image and region."""
        regions, images = len(self.targets[0]), len(self.targets)
        fixed: dict[int, list[ImageMaps]] = {}
        for k in self.layers:

            def decode_tile(tile: Tile, k: int = k) -> Tensor:
                context_labels = None if labels is None else tile.context_features(labels)
                return self.decode(decode, target_of_tile(tile), context_labels, fixed, stop_at=k)

            own = gather_statistics(
                decode_tile, tiles, images, regions, labels, bar, RELU_SCALE[k], self.covariance
            )
            fixed[k] = self.maps(k, own)
        return fixed

    def graph_inputs(self, labels: Tensor | None, size: tuple[int, int]) -> dict[str, Tensor]:
        """This match as ``MatchingDecoder``'s inputs besides the features, for relu4_1 of ``size``:
        the regions one hot, each ReLU's share per image (0 where not chosen), the styles' targets."""
        images, regions = len(self.targets), len(self.targets[0])
        if labels is None:
            one_hot = torch.ones(images, 1, *size)
        else:
            one_hot = (
                F.one_hot(labels[0, 0].cpu(), regions).permute(2, 0, 1).float().expand(images, -1, -1, -1)
            )
        share = torch.zeros(images, RELUS)
        share[:, list(self.layers)] = torch.tensor(self.shares, dtype=torch.float32).unsqueeze(1)
        inputs = {"regions": one_hot.contiguous(), "share": share}
        for k in range(RELUS):
            for part, name in enumerate(("mean", "std")):
                if k not in self.layers:  # any value: its share is 0
                    inputs[f"target_{name}_{k}"] = torch.ones(images, regions, 1)
                    continue
                j = self.layers.index(k)
                inputs[f"target_{name}_{k}"] = torch.stack([
                    torch.stack([target[j][part].flatten() for target in image_targets])
                    for image_targets in self.targets
                ]).float().cpu()  # fmt: skip
        return inputs


def region_statistics(x: Tensor, regions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per image and region of one-hot ``regions`` (N, R, H, W) the channel (mean, std) of ``x``
    (N, C, H, W), each (N, R, C), as ``nets.mean_std`` computes them, and the region's positions
    (N, R). Sums of deviations from the image's own channel means, so fp32 loses little."""
    flat, weights = x.flatten(2).float(), regions.flatten(2)
    centre = flat.mean(dim=2, keepdim=True)
    deviations = flat - centre
    count = weights.sum(dim=2)
    n = count.clamp_min(2).unsqueeze(2)  # a region under two positions is not moved (no NaN on the way)
    sums = torch.bmm(weights, deviations.transpose(1, 2))
    squares = torch.bmm(weights, deviations.square().transpose(1, 2))
    mean = sums / n + centre.transpose(1, 2)
    variance = ((squares - sums.square() / n) / (n - 1)).clamp_min(0)
    return mean, (variance + EPS).sqrt(), count


class MatchingDecoder(nn.Module):
    """A decoder with the match inside its graph, for export: every ReLU's activations measured per
    region and moved ``share[:, k]`` of the way to the targets (``move``'s arithmetic, all eight
    ReLUs, a share of 0 leaving a layer as it is).

    Inputs: relu4_1 features ``x`` (N, 512, h, w); ``regions`` (N, R, h, w), one hot (all ones for
    no mask); ``share`` (N, 8); per ReLU k, ``target_mean_k`` and ``target_std_k`` (N, R, C_k), any
    (N, R, 1) where its share is 0. Outputs: the image ``y`` and per ReLU ``mean_k``, ``std_k``
    (N, R, C_k) of its activations before they moved: decoded at share 0, a style's own
    ``decoder_statistics``.
    """

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, x: Tensor, regions: Tensor, share: Tensor, *targets: Tensor) -> tuple[Tensor, ...]:
        measured: list[Tensor] = []

        def after_relu(k: int, a: Tensor) -> Tensor:
            weights = regions if RELU_SCALE[k] == 1 else F.interpolate(regions, scale_factor=RELU_SCALE[k])
            mean, std, count = region_statistics(a, weights)
            measured.extend((mean, std))
            scale = targets[2 * k + 1] / std
            shift = targets[2 * k] - mean * scale
            shares = share[:, k : k + 1] * (count >= 2).float()  # (N, R)
            flat = weights.flatten(2)

            def at_positions(per_region: Tensor) -> Tensor:  # each position's region's value
                return torch.bmm(per_region.transpose(1, 2), flat).view(
                    a.shape[0], -1, a.shape[2], a.shape[3]
                )

            moved = (a * at_positions(scale) + at_positions(shift)).clamp_min(0)
            return a + at_positions(shares.unsqueeze(2)) * (moved - a)

        y = run_decoder(self.decoder, x, after_relu)
        return (y, *measured)
