"""Any resolution in bounded memory: tiles with a halo, and content statistics over the whole image.

AdaIN normalises the content features by their per-channel mean and std over the whole image, so a
tile cannot use its own statistics without showing seams. A first pass encodes every tile and
accumulates sums over the tile cores (``RegionStats``); the second pass encodes each tile again,
applies the *global* transform, decodes, and keeps the tile's core. The halo around each core
covers the receptive fields (relu4_1 sees 68 px, the decoder about 60), so a core's pixels come
out as they would from the whole image.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .devices import release_freed_memory
from .errors import AdainError
from .nets import EPS, Stats, std_from_sums

# (features of a tile's context, per image the whole image's content statistics per region, the
# context's region labels or None) -> the decoded pixels of the context
Paint = Callable[[Tensor, list[list[Stats | None]], Tensor | None], Tensor]
Smooth = Callable[[list[Stats | None]], list[Stats | None]]
# (the whole image's content statistics, a tile's encoder, the tiles, the progress bar) -> the Paint
# to use: what must see every tile before any is painted (the decoder match's maps), and how many
# passes over the tiles it makes
Settle = tuple[
    Callable[[list[list[Stats | None]], Callable[["Tile"], Tensor], list["Tile"], object], Paint], int
]

STRIDE = 8
HALO = 64  # pixels of context each side of a tile core (multiple of the stride)
MIN_TILE = 64
MAX_TILE = 16384
# Peak memory of one fp32 encode/decode, per input pixel: the 64-channel full-resolution layers
# (reflection-padded copy, conv output, relu output) dominate: about 3 x 64 x 4 bytes, plus slack.
BYTES_PER_PIXEL = 1024
# Whole-image buffers that exist however the image is tiled: the content and the output (fp32 RGB)
# and one conversion buffer, per pixel; and the process itself (torch, the weights).
IMAGE_BYTES_PER_PIXEL = 36
RUNTIME_MB = 300
# relu4_1 of a tile's context (512 fp32 channels at 1/8 of its side), per pixel of the context:
# what keeping every tile's features between the passes over the tiles costs
FEATURE_BYTES_PER_PIXEL = 512 * 4 // STRIDE**2


@dataclass(frozen=True)
class Tile:
    """A core box (what this tile writes) inside a context box (what it reads), in pixels of the
    stride-padded image; both start on the stride."""

    top: int
    left: int
    bottom: int
    right: int
    ctx_top: int
    ctx_left: int
    ctx_bottom: int
    ctx_right: int

    def context(self, x: Tensor) -> Tensor:
        return x[..., self.ctx_top : self.ctx_bottom, self.ctx_left : self.ctx_right]

    def context_features(self, f: Tensor) -> Tensor:
        """The context box at feature resolution (stride 8) of a whole-image feature map."""
        s = STRIDE
        return f[..., self.ctx_top // s : self.ctx_bottom // s, self.ctx_left // s : self.ctx_right // s]

    def core_features(self, f: Tensor) -> Tensor:
        """The core box at feature resolution of a whole-image feature map."""
        s = STRIDE
        return f[..., self.top // s : self.bottom // s, self.left // s : self.right // s]

    def core_of_context(self, y: Tensor, scale: int = 1) -> Tensor:
        """The core box cut out of an output (or feature map at ``1/scale``) of the context box."""
        t, l = (self.top - self.ctx_top) // scale, (self.left - self.ctx_left) // scale  # noqa: E741
        return y[..., t : t + (self.bottom - self.top) // scale, l : l + (self.right - self.left) // scale]


def grid(height: int, width: int, tile: int | None, halo: int = HALO) -> list[Tile]:
    """Tiles covering a (stride-padded) ``height`` x ``width`` image; one tile if ``tile`` is None."""
    if tile is None or (tile >= height and tile >= width):
        return [Tile(0, 0, height, width, 0, 0, height, width)]
    tiles = []
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            tiles.append(Tile(top, left, bottom, right, max(0, top - halo), max(0, left - halo),
                              min(height, bottom + halo), min(width, right + halo)))  # fmt: skip
    return tiles


def check_tile(tile: int) -> int:
    """A user's ``--tile``: within sane bounds, rounded down to the stride."""
    if not MIN_TILE <= tile <= MAX_TILE:
        raise AdainError(f"tile size must be between {MIN_TILE} and {MAX_TILE} pixels, got {tile}")
    return tile // STRIDE * STRIDE


def _fixed_bytes(height: int, width: int, extra_mb: float) -> float:
    """What the budget spends however the image is tiled: the runtime plus ``extra_mb`` and the
    whole-image buffers."""
    return (RUNTIME_MB + extra_mb) * 2**20 + height * width * IMAGE_BYTES_PER_PIXEL


def _tile_bytes_per_pixel(decoder_width: float) -> float:
    """A tile's working set per pixel of its context, its full-resolution layers ``decoder_width``
    times the paper's decoder's."""
    return BYTES_PER_PIXEL * max(1.0, decoder_width)


def auto_tile(
    height: int, width: int, max_memory_mb: float, extra_mb: float = 0.0, decoder_width: float = 1.0
) -> int | None:
    """None when the whole image fits in the memory budget, else the largest tile core that does.

    The budget covers the whole process: runtime (plus ``extra_mb``, e.g. the Winograd kernels and
    weights), whole-image buffers, and one tile's working set, whose full-resolution layers have
    ``decoder_width`` times the paper's channels in a wider decoder.
    """
    per_pixel = _tile_bytes_per_pixel(decoder_width)
    fixed = _fixed_bytes(height, width, extra_mb)
    budget = max_memory_mb * 2**20 - fixed
    if height * width * per_pixel <= budget:
        return None
    side = int(math.sqrt(max(budget, 0) / per_pixel)) - 2 * HALO
    side = side // STRIDE * STRIDE
    if side < MIN_TILE:
        need = math.ceil((fixed + (MIN_TILE + 2 * HALO) ** 2 * per_pixel) / 2**20)
        raise AdainError(
            f"a memory budget of {max_memory_mb:g} MB is too small for a {width}x{height} image "
            f"(needs at least {need} MB; raise --max-memory)"
        )
    return side


def kept_features_mb(height: int, width: int, tile: int) -> float:
    """What every tile's relu4_1 features take, kept between the passes over the tiles."""
    area = sum((t.ctx_bottom - t.ctx_top) * (t.ctx_right - t.ctx_left) for t in grid(height, width, tile))
    return area * FEATURE_BYTES_PER_PIXEL / 2**20


def features_fit(
    height: int,
    width: int,
    tile: int,
    max_memory_mb: float,
    extra_mb: float = 0.0,
    decoder_width: float = 1.0,
) -> bool:
    """Whether the budget holds every tile's features besides one tile's working set (``auto_tile``'s
    terms), so that each tile is encoded once however many passes go over the tiles."""
    working = (
        min(tile + 2 * HALO, height) * min(tile + 2 * HALO, width) * _tile_bytes_per_pixel(decoder_width)
    )
    kept = kept_features_mb(height, width, tile) * 2**20
    return _fixed_bytes(height, width, extra_mb) + working + kept <= max_memory_mb * 2**20


def plan_tiles(
    height: int, width: int, max_memory_mb: float, extra_mb: float = 0.0, decoder_width: float = 1.0
) -> int | None:
    """``auto_tile``'s tile, made a little smaller where that makes room to keep every tile's
    features (``features_fit``): at most a quarter of the budget for them, as each tile encoded
    once instead of in every pass costs less than the halos of smaller tiles."""
    side = auto_tile(height, width, max_memory_mb, extra_mb, decoder_width)
    if side is None:
        return None
    kept = kept_features_mb(height, width, side)
    if kept <= max_memory_mb / 4:
        with contextlib.suppress(AdainError):
            smaller = auto_tile(height, width, max_memory_mb - 1.25 * kept, extra_mb, decoder_width)
            if smaller is not None and features_fit(
                height, width, smaller, max_memory_mb, extra_mb, decoder_width
            ):
                return smaller
    return side


class RegionStats:
    """Per-channel sums over feature positions, per region (one region, or two with a mask), so
    that the mean and std of the whole image can be gathered tile by tile; with ``covariance``,
    the sums of the channels' products too, for their covariance."""

    def __init__(self, regions: int = 1, covariance: bool = False) -> None:
        self.sums: list[Tensor | float] = [0.0] * regions
        self.squares: list[Tensor | float] = [0.0] * regions
        self.products: list[Tensor | float] | None = [0.0] * regions if covariance else None
        self.counts = [0] * regions

    def add(self, features: Tensor, region: Tensor | None = None) -> None:
        """Add (1, C, h, w) features; ``region`` is (1, 1, h, w) with the region index per position."""
        flat = features.flatten(2)[0].double()  # (C, h*w)
        labels = None if region is None else region.flatten()
        for k in range(len(self.counts)):
            part = flat if labels is None else flat[:, labels == k]
            self.sums[k] = self.sums[k] + part.sum(dim=1)
            self.squares[k] = self.squares[k] + part.square().sum(dim=1)
            if self.products is not None:
                self.products[k] = self.products[k] + part @ part.T
            self.counts[k] += part.shape[1]

    def mean_std(self, k: int = 0, eps: float = EPS) -> Stats | None:
        """(mean, std) of region k shaped (1, C, 1, 1), as ``nets.mean_std`` computes them; None if
        the region has fewer than two positions (no spread to normalise)."""
        n = self.counts[k]
        if n < 2:
            return None
        total, squares = self.sums[k], self.squares[k]
        std = std_from_sums(total, squares, n, eps)  # type: ignore[arg-type]
        return (total / n).float().view(1, -1, 1, 1), std.float().view(1, -1, 1, 1)

    def mean_covariance(self, k: int = 0) -> tuple[Tensor, Tensor] | None:
        """Region k's channel mean (1, C, 1, 1) and covariance (C, C), in float64, as
        ``decoder_match.mean_covariance`` gives them (None: under two positions)."""
        n = self.counts[k]
        if n < 2 or self.products is None:
            return None
        mean = self.sums[k] / n  # type: ignore[operator]
        cov = (self.products[k] - n * torch.outer(mean, mean)) / (n - 1)  # type: ignore[operator]
        return mean.view(1, -1, 1, 1), cov

    def gathered(self, k: int = 0) -> Stats | None:
        """Region k's (mean, std), or with ``covariance`` its (mean, covariance)."""
        return self.mean_std(k) if self.products is None else self.mean_covariance(k)


def content_statistics(
    features: Tensor, regions: int = 1, labels: Tensor | None = None, covariance: bool = False
) -> list[list[Stats | None]]:
    """Per image of a (N, C, h, w) batch, per region: the (mean, std) of its features (with
    ``covariance``, their mean and covariance), gathered as ``render_tiled`` gathers them tile by
    tile (so one tile and many give the same transform)."""
    stats = [RegionStats(regions, covariance) for _ in range(features.shape[0])]
    for i, image_stats in enumerate(stats):
        image_stats.add(features[i : i + 1], labels)
    return [[s.gathered(k) for k in range(regions)] for s in stats]


def pad_to_stride(x: Tensor, stride: int = STRIDE) -> Tensor:
    """Pad the bottom and right edges to a multiple of ``stride`` by reflection (crop back after)."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % stride, -w % stride
    if not pad_h and not pad_w:
        return x
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def repeat_labels(labels: Tensor, scale: int) -> Tensor:
    """Region labels brought ``scale`` times finer, as nearest upsampling brings the features."""
    if scale == 1:
        return labels
    return labels.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)


def gather_statistics(
    encode_tile: Callable[[Tile], Tensor],
    tiles: list[Tile],
    images: int = 1,
    regions: int = 1,
    labels: Tensor | None = None,
    bar: object = None,
    scale: int = 1,
    covariance: bool = False,
) -> list[list[Stats | None]]:
    """Per image of the batch, per region: the whole image's feature (mean, std) (with
    ``covariance``, (mean, covariance)), gathered over the tile cores (each tile encoded with its
    halo, so a core's features are the whole image's). ``scale``: the features' resolution over
    relu4_1's (a decoder layer's), ``labels`` being at relu4_1's."""
    stats = [RegionStats(regions, covariance) for _ in range(images)]
    for t in tiles:
        core = t.core_of_context(encode_tile(t), STRIDE // scale)
        core_labels = None if labels is None else repeat_labels(t.core_features(labels), scale)
        for i, image_stats in enumerate(stats):
            image_stats.add(core[i : i + 1], core_labels)
        release_freed_memory()
        if bar is not None:
            bar.update(1)  # type: ignore[attr-defined]
    return [[s.gathered(k) for k in range(regions)] for s in stats]


def tile_encoder(
    padded: Tensor, encode: Callable[[Tensor], Tensor], memory_format: torch.memory_format
) -> Callable[[Tile], Tensor]:
    """``encode`` of a tile's context box; each tile goes in the networks' memory format, not the
    whole padded copy."""
    return lambda t: encode(t.context(padded).contiguous(memory_format=memory_format))


def statistics_tiled(padded: Tensor, encode: Callable[[Tensor], Tensor], tile: int,
                     memory_format: torch.memory_format = torch.contiguous_format) -> Stats:  # fmt: skip
    """The (mean, std) of ``encode``'s features of one stride-padded image too large to encode at once
    (a style image over the memory budget)."""
    tiles = grid(padded.shape[-2], padded.shape[-1], tile)
    stats = gather_statistics(tile_encoder(padded, encode, memory_format), tiles)
    return stats[0][0]  # type: ignore[return-value]  (a tiled image has more than one position)


def render_tiled(
    padded: Tensor,
    encode: Callable[[Tensor], Tensor],
    paint: Paint,
    tile: int,
    regions: int = 1,
    labels: Tensor | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
    smooth: Smooth | None = None,
    progress: bool = False,
    settle: Settle | None = None,
    kept: dict[Tile, Tensor] | None = None,
    last: bool = True,
) -> Tensor:
    """``paint(encode(x))`` of a stride-padded (N, 3, H, W) batch in tiles of ``tile`` pixels.

    A first pass encodes every tile and gathers the content statistics over the whole image (per
    image of the batch, per region of ``labels``, the region of each feature position of the
    whole image); ``smooth`` may replace them (the video path's temporal smoothing). ``settle``
    may then make its own passes and hand back the painter. The last pass encodes each tile
    again with its halo, paints it with the whole image's statistics and keeps its core.

    ``kept`` (where the budget holds them: ``features_fit``) keeps each tile's features from its
    first encoding, so it is encoded once; a caller painting the same tiles again (feedback's
    first render) passes the same dict with ``last`` False, and the last render empties it.
    """
    from tqdm import tqdm

    tiles = grid(padded.shape[-2], padded.shape[-1], tile)
    passes = 2 + (settle[1] if settle is not None else 0)
    bar = tqdm(total=passes * len(tiles), desc="tiles", unit="tile", disable=not progress, leave=False,
               dynamic_ncols=True)  # fmt: skip

    encode_tile = tile_encoder(padded, encode, memory_format)
    if kept is not None:
        encode_each = encode_tile

        def encode_tile(t: Tile) -> Tensor:
            if t not in kept:
                kept[t] = encode_each(t)
            return kept[t]

    content_stats = gather_statistics(encode_tile, tiles, padded.shape[0], regions, labels, bar)
    if smooth is not None:
        content_stats = [smooth(image_stats) for image_stats in content_stats]
    if settle is not None:
        paint = settle[0](content_stats, encode_tile, tiles, bar)

    out = torch.empty_like(padded, memory_format=memory_format)
    for t in tiles:
        context_labels = None if labels is None else t.context_features(labels)
        out[..., t.top : t.bottom, t.left : t.right] = t.core_of_context(
            paint(kept.pop(t) if last and kept is not None else encode_tile(t), content_stats, context_labels)
        )
        release_freed_memory()
        bar.update(1)
    bar.close()
    return out
