"""Any resolution in bounded memory: tiles with a halo, and content statistics over the whole image.

AdaIN normalises the content features by their per-channel mean and std over the whole image, so a
tile cannot use its own statistics without showing seams. A first pass encodes every tile and
accumulates sums over the tile cores (``RegionStats``); the second pass encodes each tile again,
applies the *global* transform, decodes, and keeps the tile's core. The halo around each core
covers the receptive fields (relu4_1 sees 68 px, the decoder about 60), so a core's pixels come
out as they would from the whole image.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from .errors import AdainError

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


def auto_tile(height: int, width: int, max_memory_mb: float, extra_mb: float = 0.0) -> int | None:
    """None when the whole image fits in the memory budget, else the largest tile core that does.

    The budget covers the whole process: runtime (plus ``extra_mb``, e.g. the Winograd kernels and
    weights), whole-image buffers, and one tile's working set.
    """
    fixed = (RUNTIME_MB + extra_mb) * 2**20 + height * width * IMAGE_BYTES_PER_PIXEL
    budget = max_memory_mb * 2**20 - fixed
    if height * width * BYTES_PER_PIXEL <= budget:
        return None
    side = int(math.sqrt(max(budget, 0) / BYTES_PER_PIXEL)) - 2 * HALO
    side = side // STRIDE * STRIDE
    if side < MIN_TILE:
        need = math.ceil((fixed + (MIN_TILE + 2 * HALO) ** 2 * BYTES_PER_PIXEL) / 2**20)
        raise AdainError(
            f"a memory budget of {max_memory_mb:g} MB is too small for a {width}x{height} image "
            f"(needs at least {need} MB; raise --max-memory)"
        )
    return side


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    libc = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(libc).malloc_trim if libc else None
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None


def release_freed_memory() -> None:
    """Give the heap pages that freed tensors left behind back to the system (glibc only).

    Tiles of different sizes, freed from several threads, leave holes in glibc's heaps that it keeps
    mapped; over the dozens of tiles of a large image the resident size crept up by hundreds of MB
    over the budget (``benchmarks/memory.py``). Trimming after each tile costs about a millisecond.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class RegionStats:
    """Per-channel sums over feature positions, per region (one region, or two with a mask), so
    that the mean and std of the whole image can be gathered tile by tile."""

    def __init__(self, regions: int = 1) -> None:
        self.sums: list[Tensor | float] = [0.0] * regions
        self.squares: list[Tensor | float] = [0.0] * regions
        self.counts = [0] * regions

    def add(self, features: Tensor, region: Tensor | None = None) -> None:
        """Add (1, C, h, w) features; ``region`` is (1, 1, h, w) with the region index per position."""
        flat = features.flatten(2)[0].double()  # (C, h*w)
        labels = None if region is None else region.flatten()
        for k in range(len(self.counts)):
            part = flat if labels is None else flat[:, labels == k]
            self.sums[k] = self.sums[k] + part.sum(dim=1)
            self.squares[k] = self.squares[k] + part.square().sum(dim=1)
            self.counts[k] += part.shape[1]

    def mean_std(self, k: int = 0, eps: float = 1e-5) -> tuple[Tensor, Tensor] | None:
        """(mean, std) of region k shaped (1, C, 1, 1), as ``nets.mean_std`` computes them; None if
        the region has fewer than two positions (no spread to normalise)."""
        n = self.counts[k]
        if n < 2:
            return None
        total, squares = self.sums[k], self.squares[k]
        mean = total / n
        var = ((squares - total * mean) / (n - 1)).clamp_min(0) + eps
        return mean.float().view(1, -1, 1, 1), var.sqrt().float().view(1, -1, 1, 1)
