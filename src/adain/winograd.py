"""Winograd F(6x6, 3x3) convolutions on the CPU: the same function, about 5x fewer multiplies.

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

Training goes through them too: the gradient with respect to a conv's input is the convolution of
the output gradient with the flipped, transposed kernel, which the same kernels compute (zero
padded, then folded back through the reflection padding); the weight gradient is PyTorch's.

The kernels need numba; without it, or for tensors this path does not cover (CUDA, non-float32,
autocast, training through a fused upsampling conv), every module falls back to the plain PyTorch
layers it replaced.
"""

from __future__ import annotations

import os
from fractions import Fraction

import torch
from torch import Tensor, nn

from .nets import PHASES, UpsampleConv, carry_indices, pad1, upsample_conv, upsample_phase_kernels

try:
    import numba
    import numpy as np
except ImportError:  # pragma: no cover - numba is a dependency; this keeps the plain path usable
    numba = None

TILE = 6  # output tile side: F(6x6, 3x3), 8x8 input tiles
# Interpolation points of the Cook-Toom construction (plus the point at infinity); these small
# values are the usual choice for F(6, 3) and keep float32 error near 1e-5.
POINTS = (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2))
# Transformed data per band of tile rows: small enough to stay in the last-level cache, but at
# least twice the transformed weights (which every band reads again) up to a cap on the buffers.
BAND_BYTES = 4 << 20
MAX_BAND_BYTES = 32 << 20
# What loading the kernels adds to the process (numba and LLVM), measured as resident memory.
RUNTIME_MB = 180
CHUNK = 16  # tiles per parallel task: enough tasks for every thread even in a one-row band
REFLECT, REPLICATE, ZERO = 0, 1, 2  # padding modes of the input transform


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
    def _source(i, size, mode):  # pragma: no cover - compiled
        """The input row (or column) that padded position ``i`` reads; -1 for a zero."""
        if 0 <= i < size:
            return i
        if mode == ZERO:
            return -1
        if i < 0:
            i = 0 if mode == REPLICATE else -i
        if i >= size:
            i = size - 1 if mode == REPLICATE else 2 * size - 2 - i
        return max(i, 0)  # rows far past the end only feed outputs that are cropped away

    @numba.njit(parallel=True, fastmath=True, cache=True)
    def _input_transform(x, bt, m, mode, pad, row0, row1, tiles_w, out):  # pragma: no cover
        """``out[k, p, :] = (B^T d B)[k]`` for every tile p in tile rows [row0, row1) of NHWC ``x``,
        padded by ``pad`` on the top and left (and as far as the tiles reach on the other sides)."""
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
                    q = _source(tj * m - pad + v, width, mode)
                    cols[:, v, :] = 0.0
                    if q < 0:
                        continue
                    for u in range(n):
                        r = _source(ti * m - pad + u, height, mode)
                        if r < 0:
                            continue
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


# The process that first ran the kernels. numba's OpenMP pool (GNU OpenMP, torch's) kills a forked
# child that enters it (a DataLoader worker forked after the parent stylized): there the plain
# convolutions serve instead.
_launched_by: int | None = None


def available() -> bool:
    """Whether the Winograd kernels can run here: numba importable, and this is not a fork of a
    process that ran them."""
    return numba is not None and _launched_by in (None, os.getpid())


def _upsample_phases(kernel: Tensor) -> Tensor:
    """The four output phases of ``conv(reflection_pad(upsample_2x(x)))`` as one 3x3 conv with four
    times the output channels (each phase's 2x2 kernel placed in a 3x3 window; see ``UpsampleConv``)."""
    phases = kernel.new_zeros((4, *kernel.shape))
    for k, ((a, b), small) in enumerate(zip(PHASES, upsample_phase_kernels(kernel).chunk(4), strict=True)):
        phases[k, :, :, a : a + 2, b : b + 2] = small
    return phases.flatten(0, 1)


class WinogradConv(nn.Module):
    """``relu?(conv(pad(x)))`` for a 3x3 conv, by Winograd F(6x6, 3x3) on the CPU.

    ``upsample=True`` computes ``conv(reflection_pad(upsample_2x(x)))`` at the low resolution: each
    of the four output phases is a 2x2 conv of the replication-padded input (see ``UpsampleConv``),
    so all four are one 3x3 conv with four times the output channels, sharing one input transform.

    With autograd (training), the gradient with respect to the input is a Winograd convolution too
    (of the output gradient with the flipped, transposed kernel); the weight gradient is PyTorch's.
    ``fallback`` is the plain module run for inputs the kernels do not cover.
    """

    def __init__(self, conv: nn.Conv2d, relu: bool, upsample: bool = False) -> None:
        super().__init__()
        assert conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.groups == 1
        self.conv = conv  # shared with the source network; transformed weights follow its changes
        self.relu = relu
        self.upsample = upsample
        self._cache: dict[bool, tuple[tuple[int, int], Tensor]] = {}
        at, g, bt = transform_matrices()
        self._g = g.float()
        self._at = at.float().numpy().copy()
        self._bt = bt.float().numpy().copy()

    def fallback(self, x: Tensor) -> Tensor:
        y = upsample_conv(x, self.conv) if self.upsample else self.conv(pad1(x))
        return torch.relu_(y) if self.relu else y  # the conv's gradient does not need its output

    def transformed_weights(self, transpose: bool = False) -> Tensor:
        """``G g G^T`` as (64, C_in, C_out), recomputed only when the weights change; ``transpose``:
        of the flipped kernel with inputs and outputs swapped, for the gradient of the input."""
        w = self.conv.weight
        key = (w._version, w.data_ptr())
        cached = self._cache.get(transpose)
        if cached is None or cached[0] != key:
            kernel = w.detach().float().cpu()
            if self.upsample:
                kernel = _upsample_phases(kernel)
            if transpose:
                kernel = kernel.flip(2, 3).transpose(0, 1)
            u = torch.einsum("ay,bx,oiyx->abio", self._g, self._g, kernel)
            cached = (key, u.reshape(-1, kernel.shape[1], kernel.shape[0]).contiguous())
            self._cache[transpose] = cached
        return cached[1]

    def bias(self) -> np.ndarray:
        if self.conv.bias is None:
            return np.zeros(self.conv.out_channels, dtype=np.float32)
        return self.conv.bias.detach().float().cpu().numpy().copy()

    def convolve(
        self, x: Tensor, u: Tensor, bias: np.ndarray, relu: bool, mode: int, pad: int, size: tuple[int, int]
    ) -> Tensor:
        """The Winograd convolution of NCHW ``x`` with transformed weights ``u``, padded by ``pad``
        in ``mode``, giving ``size`` (times 2 when upsampling) output pixels; NHWC memory."""
        batch, channels = x.shape[:2]
        height, width = size
        m, n = TILE, TILE + 2
        tiles_h, tiles_w = -(-height // m), -(-width // m)
        scale = 2 if self.upsample else 1
        out = torch.empty((batch, height * scale, width * scale, u.shape[2] // scale**2))
        src = x.detach().permute(0, 2, 3, 1).contiguous().numpy()
        dst = out.numpy()
        per_tile_row = n * n * batch * tiles_w * max(channels, u.shape[2]) * 4
        band_bytes = max(BAND_BYTES, min(2 * u.numel() * 4, MAX_BAND_BYTES))
        band = max(1, min(tiles_h, band_bytes // per_tile_row))
        # flat buffers, so that every band's view is contiguous (one compiled kernel, 'C' layout)
        transformed = torch.empty(n * n * batch * band * tiles_w * channels)
        products = torch.empty(n * n * batch * band * tiles_w * u.shape[2])
        global _launched_by
        _launched_by = _launched_by or os.getpid()
        numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
        for row0 in range(0, tiles_h, band):
            row1 = min(tiles_h, row0 + band)
            count = batch * (row1 - row0) * tiles_w
            v = transformed[: n * n * count * channels].view(n * n, count, channels)
            prod = products[: n * n * count * u.shape[2]].view(n * n, count, u.shape[2])
            _input_transform(src, self._bt, m, mode, pad, row0, row1, tiles_w, v.numpy())
            torch.bmm(v, u, out=prod)
            _output_transform(
                prod.numpy(), self._at, bias, relu, scale, row0, row1, tiles_w, height, width, dst
            )
        return out.permute(0, 3, 1, 2)  # a channels_last NCHW tensor

    def forward(self, x: Tensor) -> Tensor:
        if not self._covers(x):
            return self.fallback(x)
        if self._needs_grad(x):
            weight, bias = self.conv.weight, self.conv.bias
            return _WinogradConvFunction.apply(x, weight, bias, self)
        mode = REPLICATE if self.upsample else REFLECT
        return self.convolve(x, self.transformed_weights(), self.bias(), self.relu, mode, 1, x.shape[2:])

    def _needs_grad(self, x: Tensor) -> bool:
        return torch.is_grad_enabled() and (x.requires_grad or self.conv.weight.requires_grad)

    def _covers(self, x: Tensor) -> bool:
        return (
            available()
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu")
            and x.dim() == 4
            and min(x.shape[2:]) >= 2  # reflection padding needs two pixels
            and not (self.upsample and self._needs_grad(x))  # training runs it as a plain UpsampleConv
        )


class _WinogradConvFunction(torch.autograd.Function):
    """``relu?(conv(reflection_pad(x)))`` with its gradients, for training."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, layer: WinogradConv) -> Tensor:
        out = layer.convolve(
            x, layer.transformed_weights(), layer.bias(), layer.relu, REFLECT, 1, x.shape[2:]
        )
        ctx.layer = layer
        ctx.save_for_backward(x, weight, out if layer.relu else None)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        layer: WinogradConv = ctx.layer
        x, weight, out = ctx.saved_tensors
        if out is not None:
            grad = grad * (out > 0)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            # the gradient of the padded input is the "full" correlation of the output gradient
            # (zero-padded by 2) with the flipped, transposed kernel; the padding's reflected
            # border rows and columns then fold back onto the rows and columns they copied
            height, width = x.shape[2:]
            zeros = np.zeros(x.shape[1], dtype=np.float32)
            full = layer.convolve(
                grad, layer.transformed_weights(True), zeros, False, ZERO, 2, (height + 2, width + 2)
            )
            full[:, :, 2] += full[:, :, 0]
            full[:, :, height - 1] += full[:, :, height + 1]
            full[:, :, :, 2] += full[:, :, :, 0]
            full[:, :, :, width - 1] += full[:, :, :, width + 1]
            grad_x = full[:, :, 1 : height + 1, 1 : width + 1]
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            padded = pad1(x)
            _, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
                grad, padded, weight, [weight.shape[0]], [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
                [False, ctx.needs_input_grad[1], ctx.needs_input_grad[2]],
            )  # fmt: skip
        return grad_x, grad_weight, grad_bias, None


def footprint_mb(*nets: nn.Module) -> float:
    """Memory that the ``WinogradConv`` layers in ``nets`` add to a process: the kernels' runtime and
    the transformed weights, 64/9 times the size of the 3x3 weights (4 x that for upsampling ones)."""
    convs = [m for net in nets for m in net.modules() if isinstance(m, WinogradConv)]
    if not convs:
        return 0.0
    weights = sum(64 * c.conv.in_channels * c.conv.out_channels * (4 if c.upsample else 1) for c in convs)
    return RUNTIME_MB + weights * 4 / 2**20


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
    """A copy of ``net`` with each reflection-padded 3x3 conv and each ``UpsampleConv`` (with the
    ReLU after it) run as a ``WinogradConv``; other layers are shared, not copied, so training the
    copy trains ``net``. An encoder's ``tap_index`` and a decoder's ``relu_index`` are carried over
    to the new layer indices.
    Returns ``net`` itself when the kernels are not available."""
    if not available():
        return net
    layers, out = list(net), []
    last_source = []  # per new layer, the index of the last source layer it stands for
    i = 0
    while i < len(layers):
        block = _block_at(layers, i)
        if block is None:
            out.append(layers[i])
            i += 1
        else:
            conv, upsample, length = block
            i += length
            relu = i < len(layers) and isinstance(layers[i], nn.ReLU)
            i += relu
            out.append(WinogradConv(conv, relu, upsample))
        last_source.append(i - 1)
    fast = nn.Sequential(*out)
    carry_indices(net, fast, last_source)
    return fast
