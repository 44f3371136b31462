"""Winograd F(6x6, 3x3) convolutions for CPU inference: the same function, about 5x fewer multiplies.

A direct 3x3 conv spends 9 multiply-adds per output pixel and channel pair; on this project's CPUs it
already runs at the matrix-multiply floor, so going faster needs fewer multiplies. Winograd's minimal
filtering computes each 6x6 output tile from an 8x8 input tile with 64 products per channel pair
instead of 324:

    Y = A^T [ sum over input channels of (G g G^T) * (B^T d B) ] A

The sum over input channels is one batched matrix multiply (64 of them, one per tile position);
the two transforms are small fixed linear maps done here by numba kernels that also apply the
padding (reflection, or replication for the decoder's fused upsampling), the bias and the ReLU,
so the padded copy of the input is never made. Tiles are processed in bands so the transformed
data stays in cache. The result equals the direct convolution up to float32 rounding (relative
error about 1e-5; ``tests/test_winograd.py``).

The kernels need numba; without it, or for tensors this path does not cover (autograd, CUDA,
non-float32), every module falls back to the plain PyTorch layers it replaced.
"""

from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .nets import UpsampleConv, _fold_taps

try:
    import numba
    import numpy as np
except ImportError:  # pragma: no cover - numba is a dependency; this keeps the plain path usable
    numba = None

TILE = 6  # output tile side: F(6x6, 3x3), 8x8 input tiles
# Interpolation points of the Cook-Toom construction (plus the point at infinity); these small
# values are the usual choice for F(6, 3) and keep float32 error near 1e-5.
POINTS = (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2))
# Transformed data per band of tile rows: small enough to stay in the last-level cache,
# but at least twice the transformed weights, which every band reads again.
BAND_BYTES = 4 << 20
CHUNK = 16  # tiles per parallel task: enough tasks for every thread even in a one-row band


def transform_matrices(m: int = TILE, r: int = 3) -> tuple[Tensor, Tensor, Tensor]:
    """``(A^T, G, B^T)`` of Winograd's F(m, r), from the points ``POINTS[:m + r - 2]`` and infinity.

    Correlation is the transpose of polynomial multiplication: evaluating the data and filter
    polynomials at n = m + r - 1 points, multiplying, and interpolating gives the full product;
    transposing that bilinear map with respect to the data gives the sliding dot products.
    """
    n = m + r - 1
    points = [Fraction(p) for p in POINTS[: n - 1]]

    def vandermonde(cols: int) -> Tensor:
        rows = [[float(p**k) for k in range(cols)] for p in points]
        rows.append([0.0] * (cols - 1) + [1.0])  # the point at infinity: the leading coefficient
        return torch.tensor(rows, dtype=torch.float64)

    return vandermonde(m).T, vandermonde(r), torch.linalg.inv(vandermonde(n)).T


if numba is not None:

    @numba.njit(inline="always")
    def _source(i, size, replicate):  # pragma: no cover - compiled
        """The input row (or column) that padded position ``i`` reads."""
        if i < 0:
            i = 0 if replicate else -i
        if i >= size:
            i = size - 1 if replicate else 2 * size - 2 - i
        return max(i, 0)  # rows far past the end only feed outputs that are cropped away

    @numba.njit(parallel=True, fastmath=True, cache=True)
    def _input_transform(x, bt, m, replicate, row0, row1, tiles_w, out):  # pragma: no cover
        """``out[k, p, :] = (B^T d B)[k]`` for every tile p in tile rows [row0, row1) of NHWC ``x``."""
        batch, height, width, channels = x.shape
        n = bt.shape[0]
        rows = row1 - row0
        chunks = -(-tiles_w // CHUNK)  # tasks of up to CHUNK tiles of one tile row
        for task in numba.prange(batch * rows * chunks):
            t, first = task // chunks, task % chunks * CHUNK
            b, ti = t // rows, row0 + t % rows
            cols = np.empty((n, n, channels), dtype=np.float32)
            for tj in range(first, min(first + CHUNK, tiles_w)):
                p = t * tiles_w + tj
                for v in range(n):
                    q = _source(tj * m - 1 + v, width, replicate)
                    cols[:, v, :] = 0.0
                    for u in range(n):
                        r = _source(ti * m - 1 + u, height, replicate)
                        for k in range(n):
                            coef = bt[k, u]
                            if coef != 0.0:
                                for c in range(channels):
                                    cols[k, v, c] += coef * x[b, r, q, c]
                for k in range(n):
                    for j in range(n):
                        row = out[k * n + j, p]
                        row[:] = 0.0
                        for v in range(n):
                            coef = bt[j, v]
                            if coef != 0.0:
                                for c in range(channels):
                                    row[c] += coef * cols[k, v, c]

    @numba.njit(parallel=True, fastmath=True, cache=True)
    def _output_transform(
        prod, at, bias, relu, shuffle, row0, row1, tiles_w, height, width, out
    ):  # pragma: no cover
        """``A^T prod A`` + bias (+ ReLU) into NHWC ``out``; with ``shuffle`` 2 the channels hold the
        four phases of a 2x upsampled output, (row phase, column phase, channel) in that order."""
        batch, channels = out.shape[0], out.shape[3]
        m, n = at.shape
        phases = shuffle * shuffle
        rows = row1 - row0
        chunks = -(-tiles_w // CHUNK)
        for task in numba.prange(batch * rows * chunks):
            t, first = task // chunks, task % chunks * CHUNK
            b, ti = t // rows, row0 + t % rows
            half = np.empty((m, n, phases * channels), dtype=np.float32)
            acc = np.empty(channels, dtype=np.float32)
            for tj in range(first, min(first + CHUNK, tiles_w)):
                p = t * tiles_w + tj
                half[:] = 0.0
                for i in range(m):
                    for k in range(n):
                        coef = at[i, k]
                        if coef != 0.0:
                            for j in range(n):
                                src = prod[k * n + j, p]
                                for c in range(phases * channels):
                                    half[i, j, c] += coef * src[c]
                for i in range(min(m, height - ti * m)):
                    for j in range(min(m, width - tj * m)):
                        for g in range(phases):
                            acc[:] = bias
                            for v in range(n):
                                coef = at[j, v]
                                if coef != 0.0:
                                    for c in range(channels):
                                        acc[c] += coef * half[i, v, g * channels + c]
                            y = (ti * m + i) * shuffle + g // shuffle
                            xx = (tj * m + j) * shuffle + g % shuffle
                            dst = out[b, y, xx]
                            if relu:
                                for c in range(channels):
                                    dst[c] = max(acc[c], 0.0)
                            else:
                                dst[:] = acc


def available() -> bool:
    """Whether the Winograd kernels can run here (numba importable)."""
    return numba is not None


class WinogradConv(nn.Module):
    """``relu?(conv(pad(x)))`` for a 3x3 conv, by Winograd F(6x6, 3x3) on the CPU.

    ``upsample=True`` computes ``conv(reflection_pad(upsample_2x(x)))`` at the low resolution: each
    of the four output phases is a 2x2 conv of the replication-padded input (see ``UpsampleConv``),
    so all four are one 3x3 conv with four times the output channels, sharing one input transform.
    ``fallback`` is the plain module run for inputs the kernels do not cover.
    """

    def __init__(self, conv: nn.Conv2d, relu: bool, upsample: bool = False) -> None:
        super().__init__()
        assert conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.groups == 1
        self.conv = conv  # shared with the source network; transformed weights follow its changes
        self.relu = relu
        self.upsample = upsample
        self._cache: tuple[tuple[int, int], Tensor, np.ndarray] | None = None
        at, g, bt = transform_matrices()
        self._g = g.float()
        self._at = at.float().numpy().copy()
        self._bt = bt.float().numpy().copy()

    def fallback(self, x: Tensor) -> Tensor:
        y = UpsampleConv(self.conv)(x) if self.upsample else self.conv(F.pad(x, (1, 1, 1, 1), mode="reflect"))
        return torch.relu(y) if self.relu else y

    def _weights(self) -> tuple[Tensor, np.ndarray]:
        """``G g G^T`` as (64, C_in, C_out') and the bias, recomputed only when the weights change."""
        w = self.conv.weight
        key = (w._version, w.data_ptr())
        if self._cache is None or self._cache[0] != key:
            kernel = w.detach().float().cpu()
            if self.upsample:  # the four phases' 2x2 kernels, each placed in a 3x3 window
                phases = []
                for a in (0, 1):
                    rows = _fold_taps(kernel, 2, a)
                    for b in (0, 1):
                        phase = kernel.new_zeros(kernel.shape)
                        phase[:, :, a : a + 2, b : b + 2] = _fold_taps(rows, 3, b)
                        phases.append(phase)
                kernel = torch.cat(phases)
            g = self._g
            u = torch.einsum("ay,bx,oiyx->abio", g, g, kernel).reshape(-1, kernel.shape[1], kernel.shape[0])
            bias = (
                self.conv.bias.detach().float().cpu()
                if self.conv.bias is not None
                else kernel.new_zeros(w.shape[0])
            )
            self._cache = (key, u.contiguous(), bias.numpy().copy())
        return self._cache[1], self._cache[2]

    def forward(self, x: Tensor) -> Tensor:
        if not self._covers(x):
            return self.fallback(x)
        u, bias = self._weights()
        batch, channels, height, width = x.shape
        m, n = TILE, TILE + 2
        tiles_h, tiles_w = -(-height // m), -(-width // m)
        scale = 2 if self.upsample else 1
        out = torch.empty((batch, height * scale, width * scale, self.conv.out_channels))
        src = x.permute(0, 2, 3, 1).contiguous().numpy()
        dst = out.numpy()
        per_tile_row = n * n * batch * tiles_w * max(channels, u.shape[2]) * 4
        band = max(1, min(tiles_h, max(BAND_BYTES, 2 * u.numel() * 4) // per_tile_row))
        # flat buffers, so that every band's view is contiguous (one compiled kernel, 'C' layout)
        transformed = torch.empty(n * n * batch * band * tiles_w * channels)
        products = torch.empty(n * n * batch * band * tiles_w * u.shape[2])
        numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
        for row0 in range(0, tiles_h, band):
            row1 = min(tiles_h, row0 + band)
            count = batch * (row1 - row0) * tiles_w
            v = transformed[: n * n * count * channels].view(n * n, count, channels)
            prod = products[: n * n * count * u.shape[2]].view(n * n, count, u.shape[2])
            _input_transform(src, self._bt, m, self.upsample, row0, row1, tiles_w, v.numpy())
            torch.bmm(v, u, out=prod)
            _output_transform(
                prod.numpy(), self._at, bias, self.relu, scale, row0, row1, tiles_w, height, width, dst
            )
        return out.permute(0, 3, 1, 2)  # NHWC memory: a channels_last NCHW tensor

    def _covers(self, x: Tensor) -> bool:
        return (
            numba is not None
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and x.dim() == 4
            and min(x.shape[2:]) >= 2  # reflection padding needs two pixels
            and not (torch.is_grad_enabled() and (x.requires_grad or self.conv.weight.requires_grad))
        )


def _wide_enough(conv: nn.Conv2d) -> bool:
    # Narrower convs (the RGB input and output layers) spend their time in memory traffic, where
    # the transforms cost more than the multiplies they save.
    return conv.in_channels >= 64 and conv.out_channels >= 64


def _block_at(layers: list[nn.Module], i: int) -> tuple[nn.Conv2d, bool, int] | None:
    """``(conv, upsample, length)`` when ``layers[i:]`` starts with a reflection-padded 3x3 conv or an
    ``UpsampleConv`` that the kernels can run, else None."""
    if isinstance(layers[i], UpsampleConv):
        conv, upsample, length = layers[i].conv, True, 1
    elif (
        isinstance(layers[i], nn.ReflectionPad2d)
        and layers[i].padding == (1, 1, 1, 1)
        and i + 1 < len(layers)
        and isinstance(layers[i + 1], nn.Conv2d)
    ):
        conv, upsample, length = layers[i + 1], False, 2
    else:
        return None
    plain = conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (0, 0)
    plain = plain and conv.dilation == (1, 1) and conv.groups == 1
    return (conv, upsample, length) if plain and _wide_enough(conv) else None


def accelerate(net: nn.Sequential) -> nn.Sequential:
    """An inference copy of ``net`` with each reflection-padded 3x3 conv and each ``UpsampleConv``
    (with the ReLU after it) run as a ``WinogradConv``; other layers are shared, not copied.
    Returns ``net`` itself when the kernels are not available."""
    if not available():
        return net
    layers, out = list(net), []
    i = 0
    while i < len(layers):
        block = _block_at(layers, i)
        if block is None:
            out.append(layers[i])
            i += 1
            continue
        conv, upsample, length = block
        i += length
        relu = i < len(layers) and isinstance(layers[i], nn.ReLU)
        i += relu
        out.append(WinogradConv(conv, relu, upsample))
    return nn.Sequential(*out)
