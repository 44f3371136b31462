"""The decoder_match option: AdaIN on the decoder's own activations, along every path that decodes."""

import numpy as np
import pytest
import torch
from PIL import Image

from adain import decoder_match, images
from adain.backend import Backend
from adain.errors import AdainError
from adain.nets import Decoder, adain_stats, mean_std, run_decoder, taps
from adain.stylize import StyleCode, StylizerOptions

from .conftest import as_array, exit_status, make_image, stylize_argv
from .test_decoder_matching import load_script


@torch.no_grad()
def test_run_decoder_reaches_every_relu_of_every_backend(decoder_file):
    from adain.weights import load_decoder_state

    decoder = Decoder()
    decoder.load_state_dict(load_decoder_state(decoder_file))
    x = torch.rand(1, 512, 6, 5, generator=torch.Generator().manual_seed(0))
    plain = decoder(x)
    for backend in (Backend.choose("cpu", "fp32", fast=False), Backend.choose("cpu", "fp32"),
                    Backend.choose("cpu", "bf16")):  # fmt: skip
        net = backend.decoder(backend.place(decoder))
        seen = []

        def note(k, a, seen=seen):
            seen.append((k, a.shape[-2:]))
            return a

        out = run_decoder(net, x.contiguous(memory_format=backend.memory_format), note)
        # each ReLU at its resolution: 1/8 of the image, then 1/4 (four), 1/2 (two), whole
        assert seen == [(k, torch.Size((6 * s, 5 * s))) for k, s in enumerate(decoder_match.RELU_SCALE)]
        assert torch.allclose(out, plain, atol=0.05 if backend.dtype else 1e-4)
        assert run_decoder(net, x, stop_at=6).shape == (1, 64, 24, 20)


def test_the_option_decodes_as_the_measured_lever(stylizer, tile_pair):
    """What ``benchmarks/decoder_matching.py`` measured on the 220 pairs is what the option does."""
    content, style, _ = tile_pair
    script = load_script()
    painter = stylizer.with_options(decoder_match=0.75)
    c, s = (images.to_tensor(images.load_image(p)) for p in (content, style))
    with torch.no_grad():
        style_features, content_features = taps(stylizer.encode, s)[-1], taps(stylizer.encode, c)[-1]
        _, own = script.decode(stylizer.decoder, style_features)
        target = adain_stats(content_features, *mean_std(style_features))
        expected, _ = script.decode(stylizer.decoder, target, {0: own[0], 6: own[6]}, 0.75)
    out = painter.stylize_tensor(c, [painter.encode_style(style)])
    assert torch.allclose(out, expected.clamp(0, 1), atol=1e-5)
    assert not torch.allclose(out, stylizer.stylize_tensor(c, [painter.encode_style(style)]), atol=1e-3)


def test_tiles_paint_what_the_whole_image_paints_with_and_without_a_mask(stylizer, tile_pair, tmp_path):
    content, style, other = tile_pair
    painter = stylizer.with_options(decoder_match=1.0, decoder_match_layers=(0, 5, 7))
    gathered = []
    real = decoder_match.DecoderMatch.gather_maps

    def spy(self, target_of_tile, decode, tiles, labels, bar=None):
        gathered.append(len(tiles))
        return real(self, target_of_tile, decode, tiles, labels, bar)

    left = np.zeros((136, 160), np.uint8)
    left[:, :70] = 255
    Image.fromarray(left).save(tmp_path / "m.png")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(decoder_match.DecoderMatch, "gather_maps", spy)
        for styles, mask in (([style], None), ([style, other], tmp_path / "m.png")):
            whole = painter(content, styles, mask=mask)
            tiled = painter.with_options(tile=64)(content, styles, mask=mask)
            assert np.abs(as_array(whole) - as_array(tiled)).max() <= 1
            assert np.abs(as_array(whole) - as_array(stylizer(content, styles, mask=mask))).mean() > 1
    assert gathered == [9, 9]  # the maps were gathered over the tiles, each time


def test_no_share_no_style_and_a_blend_of_one_are_what_they_say(stylizer, tile_pair):
    content, style, other = tile_pair
    painter = stylizer.with_options(decoder_match=0.75)
    assert painter.with_options(decoder_match=0)(content, style) == stylizer(content, style)
    assert painter(content, style, alpha=0.0) == stylizer(content, style, alpha=0.0)  # the share times alpha
    assert painter(content, [style, other], style_weights=[1, 0]) == painter(content, style)
    halfway = painter(content, [style, other])
    assert halfway not in (painter(content, style), painter(content, other))
    codes = [painter.encode_style(s) for s in (style, other)]
    x = images.to_tensor(images.load_image(content))
    each = painter.stylize_each(torch.cat([x, x]), codes, [1.0, 0.5])
    assert torch.equal(each[:1], painter.stylize_tensor(x, codes[:1]))
    assert torch.equal(each[1:], painter.stylize_tensor(x, codes[1:], alpha=0.5))
    assert painter.with_options(feedback=0.5)(content, style) != painter(content, style)


def test_an_encoded_style_carries_the_decoders_statistics(stylizer, tile_pair, tmp_path, decoder_file):
    content, style, _ = tile_pair
    painter = stylizer.with_options(decoder_match=0.75)
    code = painter.encode_style(style)
    assert len(code.decoder) == 8 and stylizer.encode_style(style).decoder is None
    code.save(tmp_path / "s.safetensors")
    loaded = StyleCode.load(tmp_path / "s.safetensors")
    assert painter(content, loaded) == painter(content, style)
    with pytest.raises(AdainError, match="encoded without the decoder statistics"):
        painter(content, stylizer.encode_style(style))
    narrow = [(m[:, :10], s[:, :10]) for m, s in code.decoder]  # as a narrower decoder's
    with pytest.raises(AdainError, match="another decoder's statistics"):
        painter(content, StyleCode(code.mean, code.std, "other", decoder=tuple(narrow)))
    with pytest.raises(AdainError, match="8 \\(mean, std\\) pairs"):
        StyleCode(code.mean, code.std, decoder=code.decoder[:3])


@pytest.mark.parametrize(
    ("options", "reason"),
    [({"decoder_match": 1.5}, "from 0 to 1"), ({"decoder_match": 0.5, "decoder_match_layers": (0, 8)}, "0 to 7"),
     ({"decoder_match_layers": ()}, "0 to 7"), ({"decoder_match_layers": 6}, "sequence")],
)  # fmt: skip
def test_bad_options_are_refused_in_one_line(options, reason):
    with pytest.raises(AdainError, match=reason):
        StylizerOptions(**options)


def test_the_cli_flags(tmp_path, tile_pair, decoder_file):
    content, style, _ = tile_pair
    out = {k: tmp_path / f"{k}.png" for k in ("plain", "match", "layers")}
    assert exit_status(stylize_argv(content, style, out["plain"], decoder_file, "--content-size", "0")) == 0
    assert exit_status(stylize_argv(content, style, out["match"], decoder_file, "--content-size", "0",
                                    "--decoder-match", "0.75")) == 0  # fmt: skip
    assert exit_status(stylize_argv(content, style, out["layers"], decoder_file, "--content-size", "0",
                                    "--decoder-match", "0.75", "--decoder-match-layers", "5,6,7")) == 0  # fmt: skip
    made = [as_array(Image.open(path).convert("RGB")) for path in out.values()]
    assert not np.array_equal(made[0], made[1]) and not np.array_equal(made[1], made[2])
    for extra in (["--decoder-match-layers", "0,6"], ["--decoder-match", "0.5", "--decoder-match-layers", "0,9"],
                  ["--decoder-match", "2"]):  # fmt: skip
        assert exit_status(stylize_argv(content, style, tmp_path / "no.png", decoder_file, *extra)) == 2
    assert not (tmp_path / "no.png").exists()


@torch.no_grad()
def test_the_graph_for_export_matches_as_the_hooks_do(decoder_file):
    """``MatchingDecoder`` (what ``decoder_match.onnx`` holds): at share 0 a style's statistics, and
    the hooks' output for a batch, one region or two."""
    from adain.weights import load_decoder_state

    decoder = Decoder().eval()
    decoder.load_state_dict(load_decoder_state(decoder_file))
    graph = decoder_match.MatchingDecoder(decoder)
    g = torch.Generator().manual_seed(0)
    style, x = torch.rand(1, 512, 5, 5, generator=g), torch.rand(2, 512, 7, 6, generator=g)
    own, other = (
        decoder_match.decoder_statistics(decoder, style),
        decoder_match.decoder_statistics(decoder, 2 * style),
    )

    def run(match, labels, features):
        inputs = match.graph_inputs(labels, features.shape[-2:])
        return graph(features, inputs.pop("regions"), inputs.pop("share"), *inputs.values())

    measured = run(decoder_match.DecoderMatch((), [[()]], [0.0]), None, style)
    assert torch.allclose(measured[0], decoder(style))
    for k, (mean, std) in enumerate(own):
        assert torch.allclose(measured[1 + 2 * k].flatten(), mean.flatten(), atol=1e-5)
        assert torch.allclose(measured[2 + 2 * k].flatten(), std.flatten(), atol=1e-5)
    labels = (torch.rand(1, 1, 7, 6, generator=g) > 0.4).long()
    for regions, where in ((1, None), (2, labels)):
        targets = [[(own[0], own[6]), (other[0], other[6])][:regions]] * 2
        match = decoder_match.DecoderMatch((0, 6), targets, [0.75, 0.5])
        hooked = match.decode(decoder, x, where)
        assert not torch.allclose(hooked, decoder(x), atol=1e-2)
        assert torch.allclose(run(match, where, x)[0], hooked, atol=1e-5)


def test_eval_measures_it_and_says_so(tmp_path, decoder_file):
    import json

    from .conftest import one_pair_eval_argv

    argv = one_pair_eval_argv(tmp_path, decoder_file)
    assert exit_status([*argv, "--out", str(tmp_path / "plain")]) == 0
    assert exit_status([*argv, "--decoder-match", "1", "--decoder-match-layers", "6,0",
                        "--out", str(tmp_path / "match")]) == 0  # fmt: skip
    plain, match = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("plain", "match"))
    assert match["decoder_match"] == 1 and match["decoder_match_layers"] == [0, 6]
    assert match["methods"]["adain"]["style_loss"] != plain["methods"]["adain"]["style_loss"]


def test_a_style_over_the_memory_budget_is_measured_on_a_copy_that_fits(stylizer, tmp_path):
    from adain import tiling

    big = make_image(tmp_path / "big.png", (400, 336), seed=7)
    tight = stylizer.with_options(
        decoder_match=0.75, max_memory_mb=tiling.RUNTIME_MB + stylizer.overhead_mb + 60
    )
    assert tight._budget_tile(400, 336) is not None  # the style itself needs tiles
    code = tight.encode_style(big)
    roomy = stylizer.with_options(decoder_match=0.75).encode_style(big)
    assert len(code.decoder) == 8 and torch.allclose(code.mean, roomy.mean, atol=1e-4)
    # a smaller copy's statistics: near the whole image's, not the same
    assert not torch.equal(code.decoder[6][1], roomy.decoder[6][1])
    small, whole = code.decoder[0][0].flatten(), roomy.decoder[0][0].flatten()
    assert torch.corrcoef(torch.stack([small, whole]))[0, 1] > 0.9
