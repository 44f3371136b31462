"""Winograd F(6x6, 3x3): the same function as the direct convolution it replaces, and its fallbacks."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adain.nets import Decoder, Encoder, UpsampleConv, fuse_upsampling
from adain.winograd import WinogradConv, accelerate, available, transform_matrices

pytestmark = pytest.mark.skipif(not available(), reason="numba is not installed")


def _direct(conv: nn.Conv2d, x: torch.Tensor, relu: bool, upsample: bool) -> torch.Tensor:
    if upsample:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
    y = conv(F.pad(x, (1, 1, 1, 1), mode="reflect"))
    return torch.relu(y) if relu else y


def test_transform_matrices_compute_sliding_dot_products():
    at, g, bt = transform_matrices()
    assert at.shape == (6, 8) and g.shape == (8, 3) and bt.shape == (8, 8)
    d, w = torch.randn(8, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    expected = torch.stack([(d[i : i + 3] * w).sum() for i in range(6)])
    torch.testing.assert_close(at @ ((g @ w) * (bt @ d)), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("upsample", [False, True])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", [(1, 64, 12, 12), (2, 64, 7, 13), (3, 96, 2, 31), (1, 128, 25, 6)])
def test_equals_the_direct_convolution(shape, relu, upsample):
    """Every tile alignment (sizes that are and are not multiples of 6, a 2-pixel edge), batches,
    reflection and replication padding, with and without the ReLU."""
    torch.manual_seed(0)
    conv = nn.Conv2d(shape[1], 80, 3)
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    module = WinogradConv(conv, relu, upsample)
    with torch.inference_mode():
        got, expected = module(x), _direct(conv, x, relu, upsample)
    assert got.shape == expected.shape
    assert got.is_contiguous(memory_format=torch.channels_last)
    scale = expected.abs().max()
    assert (got - expected).abs().max() <= 5e-5 * scale  # float32 rounding; a wrong tap is O(1)


def test_contiguous_input_and_several_bands(monkeypatch):
    """Inputs in either memory format, and images split into many bands of tile rows."""
    import adain.winograd as winograd

    monkeypatch.setattr(winograd, "BAND_BYTES", 1)  # one tile row per band
    torch.manual_seed(1)
    conv = nn.Conv2d(64, 64, 3)
    x = torch.randn(2, 64, 40, 33)
    with torch.inference_mode():
        got, expected = WinogradConv(conv, True)(x), _direct(conv, x, True, False)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_follows_weight_changes():
    conv = nn.Conv2d(64, 64, 3)
    module = WinogradConv(conv, False)
    x = torch.randn(1, 64, 9, 9)
    with torch.no_grad():
        module(x)
        conv.weight.mul_(-2)
        conv.bias.add_(1)
        torch.testing.assert_close(module(x), _direct(conv, x, False, False), rtol=1e-4, atol=1e-4)


def test_falls_back_where_the_kernels_do_not_apply():
    """Float64, a 1-pixel side, autocast and training an upsampling conv go through the plain layers,
    with the same results."""
    conv = nn.Conv2d(64, 64, 3)
    x64 = torch.randn(1, 64, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        conv64 = nn.Conv2d(64, 64, 3).double()
        torch.testing.assert_close(WinogradConv(conv64, True)(x64), _direct(conv64, x64, True, False))
        thin = torch.randn(1, 64, 1, 5)
        up = WinogradConv(conv, False, upsample=True)
        torch.testing.assert_close(up(thin), UpsampleConv(conv)(thin))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert WinogradConv(conv, True)(torch.randn(1, 64, 8, 8)).dtype == torch.bfloat16
    x = torch.randn(1, 64, 6, 6, requires_grad=True)
    up(x).sum().backward()
    assert x.grad is not None and conv.weight.grad is not None


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("size", [(13, 10), (2, 7), (6, 12)])
def test_gradients_match_the_direct_convolution(relu, size):
    """Training: the input gradient (a Winograd convolution, folded back through the reflection
    padding) and the weight and bias gradients equal those of the plain layers."""
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 96, 3)
    x = torch.randn(2, 64, *size, requires_grad=True)
    upstream = torch.randn(2, 96, *size)
    (WinogradConv(conv, relu)(x) * upstream).sum().backward()
    ours = (x.grad, conv.weight.grad, conv.bias.grad)
    x.grad = conv.weight.grad = conv.bias.grad = None
    (_direct(conv, x, relu, False) * upstream).sum().backward()
    for got, want in zip(ours, (x.grad, conv.weight.grad, conv.bias.grad), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


def test_a_frozen_layer_passes_the_input_gradient_only():
    """The encoder in training: weights frozen, the gradient flows through to the decoder."""
    conv = nn.Conv2d(64, 64, 3).requires_grad_(False)
    x = torch.randn(1, 64, 9, 9, requires_grad=True)
    WinogradConv(conv, True)(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and conv.weight.grad is None


def test_accelerate_rewrites_the_wide_convs_of_both_networks():
    torch.manual_seed(0)
    encoder, decoder = Encoder().eval(), Decoder().eval()
    fast_encoder, fast_decoder = accelerate(encoder), accelerate(fuse_upsampling(decoder))
    # the RGB layers (3 -> 64, 64 -> 3) stay direct convolutions
    assert sum(isinstance(m, WinogradConv) for m in fast_encoder) == 8
    assert sum(isinstance(m, WinogradConv) for m in fast_decoder) == 8
    assert sum(isinstance(m, WinogradConv) and m.upsample for m in fast_decoder) == 3
    assert not any(isinstance(m, nn.ReLU) for m in fast_decoder)  # every ReLU fused into its conv
    x = torch.rand(2, 3, 45, 38)
    with torch.inference_mode():
        features, expected = fast_encoder(x), encoder(x)
        torch.testing.assert_close(features, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
        out, expected = fast_decoder(features), decoder(features)
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_the_memory_budget_counts_the_kernels_and_transformed_weights():
    from adain import tiling
    from adain.winograd import RUNTIME_MB, footprint_mb

    encoder = accelerate(Encoder())
    # transformed 8x8 kernels of the 3x3 convs with 64 or more channels in and out (all but two)
    wide = [m for m in Encoder() if isinstance(m, nn.Conv2d) and min(m.in_channels, m.out_channels) >= 64]
    assert len(wide) == 8
    weights_mb = sum(m.weight.numel() for m in wide) * 64 / 9 * 4 / 2**20
    assert footprint_mb(encoder) == pytest.approx(RUNTIME_MB + weights_mb)
    assert footprint_mb(Encoder()) == 0
    # what the kernels take comes out of the tiles' share of the budget
    assert tiling.auto_tile(4096, 4096, 2048, footprint_mb(encoder)) < tiling.auto_tile(4096, 4096, 2048)


class _Convolved(torch.utils.data.Dataset):
    def __init__(self, module: nn.Module, x: torch.Tensor) -> None:
        self.module, self.x = module, x

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> torch.Tensor:
        with torch.inference_mode():
            return self.module(self.x)[0]


def test_a_dataloader_worker_forked_after_the_kernels_ran_still_convolves():
    """numba's OpenMP pool kills a fork that enters it (a DataLoader worker forked after the parent
    stylized: StyleAugment's bank is encoded in the parent); the fork takes the plain convolution."""
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 64, 3)
    module, x = WinogradConv(conv, True, False), torch.randn(1, 64, 12, 12)
    with torch.inference_mode():
        module(x)  # the kernels run in this process first
        expected = _direct(conv, x, True, False)
    loader = torch.utils.data.DataLoader(
        _Convolved(module, x), num_workers=1, multiprocessing_context="fork", timeout=120
    )
    (got,) = list(loader)
    assert (got - expected).abs().max() <= 5e-5 * expected.abs().max()
