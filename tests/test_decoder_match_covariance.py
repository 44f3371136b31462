"""The decoder match's covariance (``decoder_match_covariance``): the chosen ReLUs whitened and
coloured to the style pass's channel covariance, along every path that decodes."""

import numpy as np
import pytest
import torch
from PIL import Image

from adain import decoder_match, images, weights
from adain.errors import AdainError, WeightsError
from adain.nets import adain_stats, mean_std, taps
from adain.stylize import StyleCode, Stylizer, StylizerOptions

from .conftest import as_array, exit_status, stylize_argv
from .test_decoder_matching import load_script


def test_the_map_gives_activations_the_targets_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    mixing = torch.randn(12, 12, generator=g)
    x = torch.einsum("dc,nchw->ndhw", mixing, torch.randn(1, 12, 40, 30, generator=g)) + 3
    y = torch.einsum(
        "dc,nchw->ndhw", torch.randn(12, 12, generator=g), torch.randn(1, 12, 40, 30, generator=g)
    )
    target = decoder_match.mean_covariance(y)
    matrix, shift = decoder_match.covariance_map(decoder_match.mean_covariance(x), target)
    moved = decoder_match.mean_covariance(torch.einsum("dc,nchw->ndhw", matrix, x) + shift)
    assert torch.allclose(moved[0], target[0], atol=1e-3)
    assert torch.allclose(moved[1], target[1], rtol=1e-3, atol=1e-3)
    # AdaIN's per-channel map matches the spreads only: the channels' correlations stay x's
    scale, shift = decoder_match.layer_map(mean_std(x), mean_std(y))
    spread = decoder_match.mean_covariance(x * scale + shift)[1]
    assert not torch.allclose(spread, target[1], atol=0.1)
    assert decoder_match.covariance_map(None, target) is None  # a region too small keeps its activations


def test_the_option_decodes_as_the_measured_lever(stylizer, tile_pair):
    """What ``benchmarks/decoder_matching.py --config 0c,6c:S`` measured is what the option does."""
    content, style, _ = tile_pair
    script = load_script()
    painter = stylizer.with_options(decoder_match=0.65, decoder_match_covariance=True)
    c, s = (images.to_tensor(images.load_image(p)) for p in (content, style))
    with torch.no_grad():
        style_features, content_features = taps(stylizer.encode, s)[-1], taps(stylizer.encode, c)[-1]
        _, own = script.decode(stylizer.decoder, style_features)
        _, measured = decoder_match.decoder_moments(stylizer.decoder, style_features, (0, 6))
        covariances = {k: (own[k][0], measured[k]) for k in (0, 6)}
        target = adain_stats(content_features, *mean_std(style_features))
        expected, _ = script.decode(stylizer.decoder, target, {0: own[0], 6: own[6]}, 0.65, covariances)
    code = painter.encode_style(style)
    out = painter.stylize_tensor(c, [code])
    assert torch.allclose(out, expected.clamp(0, 1), atol=1e-4)
    std_only = stylizer.with_options(decoder_match=0.65).stylize_tensor(c, [code])
    assert (out - std_only).abs().mean() > 1e-3


def test_tiles_masks_blends_and_feedback_paint_as_the_whole_image(stylizer, tile_pair, tmp_path):
    content, style, other = tile_pair
    painter = stylizer.with_options(
        decoder_match=1.0, decoder_match_layers=(0, 6), decoder_match_covariance=True
    )
    left = np.zeros((136, 160), np.uint8)
    left[:, :70] = 255
    Image.fromarray(left).save(tmp_path / "m.png")
    for styles, mask in (([style], None), ([style, other], tmp_path / "m.png"), ([style, other], None)):
        whole = painter(content, styles, mask=mask)
        tiled = painter.with_options(tile=64)(content, styles, mask=mask)
        assert np.abs(as_array(whole) - as_array(tiled)).max() <= 1
    assert painter(content, [style, other], style_weights=[1, 0]) == painter(content, style)
    assert painter(content, style, alpha=0.0) == stylizer(content, style, alpha=0.0)
    assert painter.with_options(feedback=0.5)(content, style) != painter(content, style)


def test_an_encoded_style_carries_the_covariances_it_needs(stylizer, tile_pair, tmp_path):
    content, style, _ = tile_pair
    painter = stylizer.with_options(decoder_match=0.75, decoder_match_covariance=True)
    code = painter.encode_style(style)
    shapes = [None if c is None else tuple(c.shape) for c in code.decoder_covariance]
    assert shapes == [(256, 256), None, None, None, None, None, (64, 64), None]
    assert stylizer.with_options(decoder_match=0.75).encode_style(style).decoder_covariance is None
    code.save(tmp_path / "s.safetensors")
    loaded = StyleCode.load(tmp_path / "s.safetensors")
    assert painter(content, loaded) == painter(content, style)
    with pytest.raises(AdainError, match="without the decoder covariances at ReLUs 0,5"):
        painter.with_options(decoder_match_layers=(0, 5))(content, loaded)
    with pytest.raises(AdainError, match="without the decoder covariances"):
        painter(content, stylizer.with_options(decoder_match=0.75).encode_style(style))
    with pytest.raises(AdainError, match="is \\(64, 64\\)"):
        StyleCode(
            code.mean, code.std, decoder=code.decoder, decoder_covariance=(None,) * 6 + (torch.eye(3), None)
        )
    with pytest.raises(AdainError, match="beside its decoder statistics"):
        StyleCode(code.mean, code.std, decoder_covariance=code.decoder_covariance)
    bad = list(code.decoder_covariance)
    bad[6] = torch.full((64, 64), float("nan"))
    with pytest.raises(AdainError, match="non-finite decoder covariance"):
        StyleCode(code.mean, code.std, decoder=code.decoder, decoder_covariance=tuple(bad))


def test_a_decoder_can_record_it_and_the_exported_models_refuse_it(tmp_path, decoder_file, tile_pair):
    content, style, _ = tile_pair
    recorded = weights.set_decoder_match(
        decoder_file, tmp_path / "cov.safetensors", 0.65, (0, 6), covariance=True
    )
    found = weights.DecoderWeights.read(recorded)
    assert found.match_options() == {"decoder_match": 0.65, "decoder_match_layers": (0, 6),
                                     "decoder_match_covariance": True}  # fmt: skip
    loaded = Stylizer.from_pretrained(decoder=recorded, device="cpu", precision="fp32")
    assert loaded.options.decoder_match_covariance
    told = Stylizer.from_pretrained(
        decoder=recorded, device="cpu", precision="fp32", decoder_match_covariance=False
    )
    assert loaded(content, style) != told(content, style)
    plain = weights.set_decoder_match(decoder_file, tmp_path / "std.safetensors", 0.65, (0, 6))
    assert "decoder_match_covariance" not in weights.DecoderWeights.read(plain).match_options()
    meta = dict(found.metadata, decoder_match_covariance="yes")
    from safetensors.torch import save_file

    save_file(weights.read_state_dict(recorded), str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(WeightsError, match="bad decoder match"):
        weights.DecoderWeights.read(tmp_path / "bad.safetensors")
    pytest.importorskip("onnx")
    from adain.export import export_onnx

    with pytest.raises(AdainError, match="covariance, which the exported models cannot run"):
        export_onnx(tmp_path / "export", decoder=recorded)
    assert not (tmp_path / "export").exists()


def test_an_exported_decoder_refuses_it_in_one_line(stylizer):
    class Exported:
        def matching(self, x, inputs):  # the ONNX decoder's graph: no hook reaches its ReLUs
            raise AssertionError("not reached")

    with pytest.raises(AdainError, match="torch backend only"):
        decoder_match.decoder_moments(Exported(), torch.rand(1, 512, 4, 4), (0, 6))


def test_bad_options_and_flags_are_refused_in_one_line(tmp_path, tile_pair, decoder_file):
    with pytest.raises(AdainError, match="True or False"):
        StylizerOptions(decoder_match=0.5, decoder_match_covariance="yes")
    content, style, _ = tile_pair
    out = {k: tmp_path / f"{k}.png" for k in ("std", "cov")}
    common = ["--content-size", "0", "--decoder-match", "0.75"]
    assert exit_status(stylize_argv(content, style, out["std"], decoder_file, *common)) == 0
    assert (
        exit_status(
            stylize_argv(content, style, out["cov"], decoder_file, *common, "--decoder-match-covariance")
        )
        == 0
    )
    made = [as_array(Image.open(path).convert("RGB")) for path in out.values()]
    assert not np.array_equal(made[0], made[1])
    assert (
        exit_status(
            stylize_argv(content, style, tmp_path / "no.png", decoder_file, "--decoder-match-covariance")
        )
        == 2
    )
    assert not (tmp_path / "no.png").exists()
