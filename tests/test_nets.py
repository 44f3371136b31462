import pytest
import torch
from torch import nn

from adain.nets import (
    TAPS,
    Decoder,
    Encoder,
    UpsampleConv,
    adain,
    decoder_keys,
    encoder_keys,
    fuse_upsampling,
    mean_std,
    new_channels,
    pad1,
    taps,
    widen_decoder,
)


def test_adain_output_has_the_style_statistics():
    torch.manual_seed(0)
    content = torch.randn(2, 512, 13, 9) * 3 + 1
    style = torch.rand(2, 512, 7, 11) * 5
    out = adain(content, style)
    out_mean, out_std = mean_std(out)
    style_mean, style_std = mean_std(style)
    assert torch.allclose(out_mean, style_mean, atol=1e-4)
    assert torch.allclose(out_std, style_std, atol=1e-4)


def test_adain_keeps_the_normalised_content():
    torch.manual_seed(1)
    content = torch.randn(1, 8, 10, 10)
    style = torch.randn(1, 8, 5, 5)
    out = adain(content, style)
    c_mean, c_std = mean_std(content)
    s_mean, s_std = mean_std(style)
    assert torch.allclose((out - s_mean) / s_std, (content - c_mean) / c_std, atol=1e-4)


def test_mean_std_by_hand():
    x = torch.tensor([1.0, 2.0, 3.0, 6.0]).view(1, 1, 2, 2)
    mean, std = mean_std(x, eps=0.0)
    assert mean.item() == pytest.approx(3.0)
    assert std.item() == pytest.approx((14 / 3) ** 0.5)  # unbiased: (4+1+0+9)/3


def test_mean_std_matches_torch_var_on_a_large_offset():
    # deviations from a mean of 1000 would lose digits in a one-pass sum of squares
    torch.manual_seed(2)
    x = (torch.randn(2, 3, 40, 30) * 0.5 + 1000).to(memory_format=torch.channels_last)
    mean, std = mean_std(x, eps=0.0)
    flat = x.reshape(2, 3, -1).double()
    assert torch.allclose(mean.flatten().double(), flat.mean(2).flatten(), rtol=1e-6)
    assert torch.allclose(std.flatten().double(), flat.std(2).flatten(), rtol=1e-3)


def test_mean_std_gradients():
    torch.manual_seed(4)
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(mean_std, (x,))
    assert torch.autograd.gradcheck(lambda t: mean_std(t)[1], (x,))  # the mean unused
    y = torch.randn(1, 2, 3, 3).bfloat16().requires_grad_()
    mean_std(y)[1].sum().backward()
    assert y.grad.dtype == torch.bfloat16


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
def test_padding_keeps_the_dtype_under_autocast(mode):
    # autocast would run the pad in float32: a copy up and one back down around every conv
    x = torch.randn(1, 4, 6, 5).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = pad1(x, mode)
        conv_input_dtypes = []
        encoder = Encoder()
        encoder[2].register_forward_pre_hook(lambda _, args: conv_input_dtypes.append(args[0].dtype))
        encoder(torch.rand(1, 3, 16, 16))
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, torch.nn.functional.pad(x, (1, 1, 1, 1), mode=mode))
    assert conv_input_dtypes == [torch.bfloat16]


@pytest.mark.parametrize("size", [(16, 16), (17, 33), (35, 18), (64, 48)])
def test_shapes_at_odd_sizes(size):
    encoder, decoder = Encoder(), Decoder()
    x = torch.rand(1, 3, *size)
    taps = encoder.taps(x)
    assert [t.shape[1] for t in taps] == [64, 128, 256, 512]
    assert torch.equal(taps[-1], encoder(x))
    feat = taps[-1]
    assert feat.shape[-2:] == tuple(-(-s // 8) for s in size)  # ceil-mode pooling
    assert decoder(feat).shape[-2:] == tuple(8 * s for s in feat.shape[-2:])


def test_standard_key_layouts():
    assert list(encoder_keys())[:4] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert list(encoder_keys())[-2:] == ["29.weight", "29.bias"]
    assert encoder_keys()["29.weight"] == (512, 256, 3, 3)
    assert list(decoder_keys())[:2] == ["1.weight", "1.bias"]
    assert decoder_keys()["28.weight"] == (3, 64, 3, 3)
    assert Encoder().tap_index == {"relu1_1": 3, "relu2_1": 10, "relu3_1": 17, "relu4_1": 30}
    assert list(TAPS) == ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]


@pytest.mark.parametrize(
    "norm,layer", [("batch", torch.nn.BatchNorm2d), ("instance", torch.nn.InstanceNorm2d)]
)
def test_decoder_norm_ablation_adds_norm_layers(norm, layer):
    decoder = Decoder(norm)
    assert sum(isinstance(m, layer) for m in decoder) == 8  # every conv but the output one
    assert decoder(torch.rand(2, 512, 4, 4)).shape == (2, 3, 32, 32)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d)) for m in Decoder())


@pytest.mark.parametrize("norm", ["none", "batch", "instance"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_upsampling_equals_the_decoder(norm, channels_last):
    torch.manual_seed(0)
    decoder = Decoder(norm).eval()
    fused = fuse_upsampling(decoder)
    assert sum(isinstance(m, UpsampleConv) for m in fused) == 3
    assert len(fused) == len(decoder) - 6
    x = torch.randn(2, 512, 5, 7)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected, got = decoder(x), fused(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_fused_upsampling_gradients():
    torch.manual_seed(5)
    conv = torch.nn.Conv2d(3, 2, 3).double()
    plain = torch.nn.Sequential(torch.nn.Upsample(scale_factor=2), torch.nn.ReflectionPad2d(1), conv)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(UpsampleConv(conv), (x,))
    weight_grads = []
    for net in (plain, UpsampleConv(conv)):
        conv.zero_grad()
        torch.relu_(net(x)).square().sum().backward()  # the in-place ReLU that follows it in a decoder
        weight_grads.append(conv.weight.grad.clone())
    torch.testing.assert_close(weight_grads[1], weight_grads[0])


def test_fused_upsampling_follows_later_weight_changes():
    torch.manual_seed(6)
    decoder = Decoder().eval()
    fused = fuse_upsampling(decoder)
    decoder.load_state_dict({k: torch.randn_like(v) * 0.05 for k, v in decoder.state_dict().items()})
    x = torch.randn(1, 512, 4, 4)
    with torch.no_grad():
        expected = decoder(x)
        torch.testing.assert_close(fused(x), expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())


@pytest.mark.parametrize("mode", ["copy", "fresh"])
@pytest.mark.parametrize("norm", ["none", "instance", "batch"])
@pytest.mark.parametrize("width", [1.25, 2.0])
def test_a_widened_decoder_paints_what_the_narrow_one_paints(norm, width, mode):
    torch.manual_seed(0)
    narrow = Decoder(norm).eval()
    for module in narrow.modules():  # norm layers' parameters off their defaults, so copying them shows
        if isinstance(module, nn.BatchNorm2d | nn.InstanceNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_()
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2)
    wide = widen_decoder(narrow, width, seed=1, mode=mode).eval()
    assert (wide.norm, wide.width) == (norm, width)
    assert wide[1].out_channels == round(256 * width) and wide[-1].out_channels == 3
    x = torch.rand(2, 512, 6, 5)
    with torch.no_grad():
        assert torch.allclose(wide(x), narrow(x), atol=1e-5)


def test_the_copies_of_a_widened_channel_part_under_training():
    torch.manual_seed(0)
    narrow = Decoder()
    wide = widen_decoder(narrow, 2.0, seed=0)
    # the second conv's input channels c and c + 256 copy the first conv's channel c: the same
    # incoming weights, different shares of its outgoing ones (the noise), so different gradients
    first, second = [m for m in wide if isinstance(m, nn.Conv2d)][:2]
    assert torch.equal(first.weight[:256], first.weight[256:])
    shares = second.weight[:256, :256] + second.weight[:256, 256:]
    assert torch.allclose(shares, [m for m in narrow if isinstance(m, nn.Conv2d)][1].weight, atol=1e-6)
    assert not torch.allclose(second.weight[:, :256], second.weight[:, 256:])
    wide(torch.rand(1, 512, 4, 4)).square().mean().backward()
    assert not torch.allclose(first.weight.grad[:256], first.weight.grad[256:])


def test_fresh_channels_start_silent_and_learn_from_their_outgoing_weights():
    torch.manual_seed(0)
    narrow = Decoder()
    wide = widen_decoder(narrow, 1.5, seed=3, mode="fresh")
    first, second = [m for m in wide if isinstance(m, nn.Conv2d)][:2]
    assert torch.equal(second.weight[:256, 256:], torch.zeros(256, 128, 3, 3))  # new into old: zero
    assert first.weight[256:].std() > 0 and second.weight[256:].std() > 0  # the new channels are drawn
    again = widen_decoder(narrow, 1.5, seed=3, mode="fresh")
    assert all(
        torch.equal(a, b) for a, b in zip(wide.parameters(), again.parameters(), strict=True)
    )  # seeded
    wide(torch.rand(1, 512, 4, 4)).square().mean().backward()
    assert second.weight.grad[:256, 256:].abs().max() > 0  # their zero weights into the old channels learn

    masks = new_channels(wide)
    assert set(masks) == {name for name, _ in wide.named_parameters()}
    assert masks["1.weight"][256:].all() and not masks["1.weight"][:256].any()
    assert masks["5.weight"][:256, 256:].all() and not masks["5.weight"][:256, :256].any()
    added = sum(int(m.sum()) for m in masks.values())
    assert added == sum(p.numel() for p in wide.parameters()) - sum(p.numel() for p in narrow.parameters())


def test_decoder_widths_are_checked():
    for bad in (0.5, 1.01, 4.5, float("nan")):
        with pytest.raises(ValueError, match="multiple of 1/64"):
            Decoder(width=bad)
    with pytest.raises(ValueError, match="cannot widen"):
        widen_decoder(Decoder(width=1.5), 1.25)


def test_taps_keep_the_callers_autocast_or_run_in_their_own_dtype():
    encoder = Encoder().eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):  # a bf16 trainer's step
            assert [f.dtype for f in taps(encoder, x)][1:] == [torch.bfloat16] * 3
        plain, low = taps(encoder, x), taps(encoder, x, torch.bfloat16)
    assert all(f.dtype == torch.float32 for f in plain + low)
    assert torch.equal(low[0], plain[0])  # relu1_1 in fp32, as the pipeline's Autocast keeps it
    assert not torch.equal(low[-1], plain[-1])
    assert torch.allclose(low[-1], plain[-1], rtol=0.1, atol=0.1 * plain[-1].abs().mean().item())
