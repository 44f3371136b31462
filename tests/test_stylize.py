import numpy as np
import pytest
import torch
from PIL import Image

from adain import images
from adain.colour import match_color
from adain.errors import AdainError, ImageError
from adain.nets import adain, mean_std
from adain.nets import adain_regions as transform
from adain.stylize import StyleCode
from adain.tiling import RegionStats, pad_to_stride

from .conftest import CONTENT, STYLE, make_image, needs_shared


def as_array(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float32)


def test_alpha_zero_is_decoding_the_content_features(stylizer, small_pair):
    content, style = small_pair
    out = stylizer(content, style, alpha=0.0)
    x = images.to_tensor(Image.open(content).convert("RGB"))
    with torch.no_grad():
        expected = stylizer.decoder(stylizer.encoder(pad_to_stride(x)))[..., :37, :53]
    assert np.abs(as_array(out) - as_array(images.to_pil(expected))).max() <= 1


def test_alpha_interpolates_features(stylizer, small_pair):
    content, style = small_pair
    full, none, half = (as_array(stylizer(content, style, alpha=a)) for a in (1.0, 0.0, 0.5))
    assert np.abs(full - none).mean() > 1  # style changes the picture
    assert np.abs(half - full).mean() < np.abs(none - full).mean()


def test_one_hot_style_weights_equal_the_single_style(stylizer, tmp_path, small_pair):
    content, style = small_pair
    other = make_image(tmp_path / "other.png", (36, 36), seed=9)
    single = as_array(stylizer(content, style))
    blended = as_array(stylizer(content, [other, style], style_weights=[0.0, 1.0]))
    assert np.abs(single - blended).max() <= 1
    mixed = as_array(stylizer(content, [other, style], style_weights=[1, 1]))
    assert np.abs(mixed - single).mean() > 0.5


def test_output_has_the_content_size_at_odd_sizes(stylizer, tmp_path):
    style = make_image(tmp_path / "s.png", (32, 32))
    for size in [(16, 16), (17, 31), (101, 45)]:
        content = make_image(tmp_path / f"c{size}.png", size)
        assert stylizer(content, style).size == size


def test_resizing_and_crop(stylizer, small_pair):
    content, style = small_pair
    assert stylizer(content, style, content_size=24).size == (34, 24)
    assert stylizer(content, style, content_size=24, crop=True).size == (24, 24)


def test_inputs_may_be_paths_pil_or_tensors(stylizer, small_pair):
    content, style = small_pair
    by_path = as_array(stylizer(content, style))
    by_pil = as_array(stylizer(Image.open(content), Image.open(style)))
    by_tensor = as_array(stylizer(images.to_tensor(Image.open(content).convert("RGB"))[0], style))
    assert np.abs(by_path - by_pil).max() == 0
    assert np.abs(by_path - by_tensor).max() <= 1


def test_style_code_is_reusable_and_saves(stylizer, small_pair, tmp_path):
    content, style = small_pair
    code = stylizer.encode_style(style)
    assert code.mean.shape == (1, 512, 1, 1)
    direct = as_array(stylizer(content, style))
    assert np.abs(as_array(stylizer(content, code)) - direct).max() == 0
    code.save(tmp_path / "style.safetensors")
    loaded = StyleCode.load(tmp_path / "style.safetensors")
    assert torch.equal(loaded.mean, code.mean.cpu()) and loaded.name == "style"
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(AdainError, match="not a saved style"):
        StyleCode.load(tmp_path / "junk.safetensors")


def test_stylize_each_paints_each_image_in_its_own_style(stylizer):
    """One pass over a batch of different styles and alphas equals each image done on its own."""
    torch.manual_seed(0)
    batch = torch.rand(3, 3, 40, 48)
    codes = [stylizer.encode_style(torch.rand(3, 32, 32) * scale) for scale in (1.0, 0.3, 0.6)]
    alphas = [1.0, 0.5, 0.8]
    together = stylizer.stylize_each(batch, codes, alphas)
    alone = torch.cat(
        [stylizer.stylize_tensor(x[None], [c], a) for x, c, a in zip(batch, codes, alphas, strict=True)]
    )
    assert torch.allclose(together, alone, atol=1e-4)
    assert not torch.allclose(together[0], stylizer.stylize_tensor(batch[:1], [codes[1]], 1.0)[0], atol=1e-2)
    with pytest.raises(AdainError, match="as many styles and alphas"):
        stylizer.stylize_each(batch, codes[:2], alphas)
    with pytest.raises(AdainError, match="alpha"):
        stylizer.stylize_each(batch, codes, [1.0, 2.0, 0.5])


def test_mask_is_cropped_with_the_content(stylizer, tmp_path):
    """With crop, the mask must be cut like the content, not squashed onto the cropped square."""
    content = make_image(tmp_path / "wide.png", (96, 48), seed=3)
    mask = Image.new("L", (96, 48), 0)
    mask.paste(255, (0, 0, 24, 48))  # only the left quarter is white: outside the centre crop
    mask_path = tmp_path / "mask.png"
    mask.save(mask_path)
    a = make_image(tmp_path / "a.png", (48, 48), seed=4)
    dark = tmp_path / "dark.png"
    Image.new("RGB", (48, 48), (10, 10, 10)).save(dark)
    cropped_masked = as_array(stylizer(content, [a, dark], mask=mask_path, crop=True, content_size=48))
    cropped_dark = as_array(stylizer(content, dark, crop=True, content_size=48))
    assert np.abs(cropped_masked - cropped_dark).max() <= 1  # the crop holds only the black region


def test_masked_transform_gives_each_region_its_style():
    torch.manual_seed(0)
    features = torch.rand(1, 16, 8, 8)
    fg = mean_std(torch.rand(1, 16, 5, 5) * 4 + 3)
    bg = mean_std(torch.rand(1, 16, 5, 5) * 0.5)
    labels = torch.ones(1, 1, 8, 8, dtype=torch.long)
    labels[..., :, :3] = 0
    stats = RegionStats(2)
    stats.add(features, labels)
    out = transform(features, [stats.mean_std(0), stats.mean_std(1)], [fg, bg], labels)
    left = out[..., :, :3].reshape(1, 16, -1, 1)
    right = out[..., :, 3:].reshape(1, 16, -1, 1)
    for part, (mean, std) in ((left, fg), (right, bg)):
        got_mean, got_std = mean_std(part)
        assert torch.allclose(got_mean, mean, atol=1e-4)
        assert torch.allclose(got_std, std, atol=1e-3)


def test_mask_in_the_pipeline_follows_the_mask(stylizer, tmp_path):
    content = make_image(tmp_path / "c.png", (64, 64), seed=3)
    dark = tmp_path / "dark.png"
    Image.new("RGB", (64, 64), (10, 10, 10)).save(dark)
    bright = make_image(tmp_path / "bright.png", (64, 64), seed=4)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))  # left half white: first style
    mask_path = tmp_path / "mask.png"
    mask.save(mask_path)
    masked = as_array(stylizer(content, [bright, dark], mask=mask_path))
    only_bright = as_array(stylizer(content, bright))
    only_dark = as_array(stylizer(content, dark))
    # away from the seam, each half is closer to the single-style result of its own style
    left, right = slice(0, 20), slice(44, 64)
    assert (
        np.abs(masked[:, left] - only_bright[:, left]).mean()
        < np.abs(masked[:, left] - only_dark[:, left]).mean()
    )
    assert (
        np.abs(masked[:, right] - only_dark[:, right]).mean()
        < np.abs(masked[:, right] - only_bright[:, right]).mean()
    )


def test_match_color_moves_statistics():
    torch.manual_seed(0)
    source = torch.rand(1, 3, 20, 20) * 0.3
    target = torch.rand(1, 3, 20, 20) * 0.5 + 0.4
    out = match_color(source, target)
    assert torch.allclose(out.mean(dim=(2, 3)), target.mean(dim=(2, 3)), atol=0.02)


def test_preserve_color_keeps_content_colours(stylizer, tmp_path):
    content = tmp_path / "blue.png"
    Image.new("RGB", (48, 48), (30, 60, 200)).save(content)
    make_image(content, (48, 48), seed=5)  # textured picture
    red = tmp_path / "red.png"
    arr = np.zeros((48, 48, 3), np.uint8)
    arr[..., 0] = np.random.default_rng(0).integers(150, 255, (48, 48))
    Image.fromarray(arr).save(red)
    kept = stylizer(content, red, preserve_color=True)
    assert kept.size == (48, 48)
    with pytest.raises(AdainError, match="preserve_color needs the style images"):
        stylizer(content, stylizer.encode_style(red), preserve_color=True)


def test_content_alpha_is_carried(stylizer, tmp_path, small_pair):
    _, style = small_pair
    content = make_image(tmp_path / "rgba.png", (40, 40), mode="RGBA")
    out = stylizer(content, style)
    assert out.mode == "RGBA" and out.size == (40, 40)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"alpha": 1.5}, "alpha must be between 0 and 1"),
        ({"style_weights": [1.0, 2.0]}, "2 style weights given for 1 styles"),
        ({"mask": "mask.png"}, "exactly two styles"),
    ],
)
def test_bad_controls(stylizer, small_pair, kwargs, message):
    content, style = small_pair
    with pytest.raises(AdainError, match=message):
        stylizer(content, style, **kwargs)


def test_too_small_and_too_large(stylizer, tmp_path, small_pair):
    _, style = small_pair
    tiny = make_image(tmp_path / "tiny.png", (8, 30))
    with pytest.raises(ImageError, match="too small"):
        stylizer(tiny, style)
    content, _ = small_pair
    with pytest.raises(
        ImageError, match="resizing to 100000 px would make a 143243x100000 image, over the limit"
    ):
        stylizer(content, style, content_size=100_000)
    with pytest.raises(ImageError, match="over the limit"):
        stylizer(content, style, style_size=100_000)


def test_adain_reference():
    """The pipeline's transform is the module function: same numbers on real-shaped features."""
    torch.manual_seed(0)
    c, s = torch.rand(1, 512, 6, 7), torch.rand(1, 512, 4, 4)
    mean, std = mean_std(s)
    from adain.nets import adain_stats

    assert torch.allclose(adain_stats(c, mean, std), adain(c, s))


@needs_shared
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("content_size", [128, 203])
def test_fast_path_matches_the_plain_fp32_path(content_size, precision):
    """The fidelity gate: the fast path (channels_last, upsampling fused into the decoder's convs,
    Winograd convolutions in fp32, or bf16 autocast as on CPUs with native bf16) against the plain
    contiguous fp32 pipeline, with the shipped decoder on a canonical pair."""
    from adain.backend import Autocast
    from adain.stylize import Stylizer
    from adain.winograd import WinogradConv

    fast = Stylizer.from_pretrained(device="cpu", precision=precision)
    plain = Stylizer.from_pretrained(device="cpu", fast=False)
    if precision == "fp32":
        assert sum(isinstance(m, WinogradConv) and m.upsample for m in fast.decode) == 3
        assert sum(isinstance(m, WinogradConv) for m in fast.encode) == 8  # every conv but the RGB input one
    else:
        assert isinstance(fast.encode, Autocast) and fast.encode.dtype == torch.bfloat16
        # the layers that see pixels scaled to 0..255 stay in fp32
        assert len(fast.encode.head) == fast.encoder.tap_index["relu1_1"] + 1
    assert plain.decode is plain.decoder and plain.backend.memory_format == torch.contiguous_format
    a = as_array(fast(CONTENT, STYLE, content_size=content_size, style_size=128))
    b = as_array(plain(CONTENT, STYLE, content_size=content_size, style_size=128))
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    assert mse == 0 or 10 * np.log10(255**2 / mse) >= 40


def test_precision_auto_follows_the_hardware():
    from adain.backend import cpu_prefers_bf16
    from adain.devices import cpu_has_native_bf16, pick_precision

    cpu = torch.device("cpu")
    native = cpu_has_native_bf16()
    assert pick_precision("auto", cpu) == (torch.bfloat16 if native and cpu_prefers_bf16() else None)
    assert pick_precision("fp32", cpu) is None and pick_precision("bf16", cpu) == torch.bfloat16
    with pytest.raises(AdainError, match="unknown precision"):
        pick_precision("int8", cpu)


def test_auto_precision_is_measured_once_and_remembered(tmp_path, monkeypatch):
    """On a CPU with native bf16 the faster arithmetic is timed once, kept per machine in
    ``$ADAIN_HOME/precision.json``, and timed again only when that file does not say."""
    import json

    from adain import backend, devices

    monkeypatch.setenv("ADAIN_HOME", str(tmp_path))
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    timings = [{"bf16": 0.4, "fp32": 0.2}]
    monkeypatch.setattr(backend, "time_arithmetic", lambda: timings.pop())
    cpu = torch.device("cpu")
    assert devices.pick_precision("auto", cpu) is None  # fp32 measured faster
    assert devices.pick_precision("auto", cpu) is None  # remembered: timings is empty now
    [(key, entry)] = json.loads((tmp_path / "precision.json").read_text()).items()
    # per CPU model, not per thread count: one-thread workers choose as their parent does
    assert key.startswith(f"CPU: {devices.cpu_name()}; torch ") and "thread" not in key
    assert entry == {"choice": "fp32", "seconds": {"bf16": 0.4, "fp32": 0.2}}
    (tmp_path / "precision.json").write_text("[not ours")
    timings.append({"bf16": 0.1, "fp32": 0.2})
    assert devices.pick_precision("auto", cpu) == torch.bfloat16  # a bad file is measured again
    assert devices.pick_precision("fp32", cpu) is None  # asked for: never measured
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    (tmp_path / "precision.json").unlink()
    assert devices.pick_precision("auto", cpu) is None and not (tmp_path / "precision.json").exists()


def test_timing_the_arithmetic_runs_both_pipelines():
    from adain.backend import time_arithmetic

    seconds = time_arithmetic(size=32, runs=1)
    assert set(seconds) == {"bf16", "fp32"} and all(t > 0 for t in seconds.values())


@pytest.mark.parametrize("text", ["", "a,1", "1,-1", "0,0", "nan,1", "1,inf"])
def test_bad_style_weights_are_one_line_errors(text):
    from adain.stylize import parse_style_weights

    with pytest.raises(AdainError, match="style weights"):
        parse_style_weights(text)


def test_style_weights_parse():
    from adain.stylize import parse_style_weights

    assert parse_style_weights("3, 1") == [3.0, 1.0]


def test_reusing_content_encodes_a_content_once_and_changes_nothing(stylizer, monkeypatch):
    """One content in many styles: one encoder pass inside ``reusing_content``, the same pixels as
    encoding each time, and a content changed in place between calls is encoded again."""
    torch.manual_seed(0)
    content, other = torch.rand(1, 3, 40, 48), torch.rand(1, 3, 40, 48)
    codes = [stylizer.encode_style(torch.rand(3, 32, 32) * scale) for scale in (1.0, 0.3, 0.6)]
    expected = [stylizer.stylize_tensor(content, [c], 0.8) for c in codes]
    calls = []
    encode = stylizer.encode
    monkeypatch.setattr(stylizer, "encode", lambda x: calls.append(x.shape) or encode(x))
    with stylizer.reusing_content():
        got = [stylizer.stylize_tensor(content.clone(), [c], 0.8) for c in codes]
        assert len(calls) == 1
        assert not torch.equal(stylizer.stylize_tensor(other, [codes[0]]), got[0])
        content_changed = content.clone()
        stylizer.stylize_tensor(content_changed, [codes[0]])
        content_changed.mul_(0.5)  # in place, after its features were kept
        halved = stylizer.stylize_tensor(content_changed, [codes[0]])
        assert len(calls) == 4
        with stylizer.reusing_content():  # nested, as a loop of batch.stylize_jobs in a caller's block
            stylizer.stylize_tensor(content, [codes[0]])
        stylizer.stylize_tensor(content, [codes[0]])
        assert len(calls) == 5  # the outer block still keeps what the inner one encoded
    for g, e in zip(got, expected, strict=True):
        assert torch.equal(g, e)
    assert torch.equal(halved, stylizer.stylize_tensor(content * 0.5, [codes[0]]))
    assert len(calls) == 6 and stylizer._last_content is None  # nothing kept outside the block


def test_reusing_content_keeps_the_smaller_first_pass_too(stylizer, monkeypatch):
    """With ``feedback_preview``, one content in many styles encodes the content and its smaller
    copy once each; each style's first and final outputs are still encoded."""
    torch.manual_seed(0)
    content = torch.rand(1, 3, 64, 80)
    codes = [stylizer.encode_style(torch.rand(3, 32, 32) * scale) for scale in (1.0, 0.3, 0.6)]
    previewed = stylizer.with_options(feedback=0.5, feedback_preview=0.5)
    expected = [previewed.stylize_tensor(content, [c]) for c in codes]
    shapes = []
    encode = previewed.encode
    monkeypatch.setattr(previewed, "encode", lambda x: shapes.append(tuple(x.shape[-2:])) or encode(x))
    with previewed.reusing_content():
        got = [previewed.stylize_tensor(content.clone(), [c]) for c in codes]
        assert shapes.count((64, 80)) == 1  # the content, once
        assert shapes.count((32, 40)) == 1 + len(codes)  # its half once, and each style's first output
        previewed.stylize_tensor(torch.rand(1, 3, 64, 80), [codes[0]])
        assert len(previewed._last_content) == 2  # a new content's pair replaced the old one's
    assert (shapes.count((64, 80)), shapes.count((32, 40))) == (2, 1 + len(codes) + 2)
    for g, e in zip(got, expected, strict=True):
        assert torch.equal(g, e)
