import numpy as np
import pytest
import torch

from adain import tiling
from adain.errors import AdainError
from adain.nets import mean_std

from .conftest import make_image


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_region_stats_equal_whole_image_statistics_when_gathered_in_parts():
    torch.manual_seed(0)
    features = torch.rand(1, 32, 20, 24) * 3
    stats = tiling.RegionStats()
    for rows in (slice(0, 7), slice(7, 20)):
        stats.add(features[..., rows, :])
    mean, std = stats.mean_std()
    ref_mean, ref_std = mean_std(features)
    assert torch.allclose(mean, ref_mean, atol=1e-5) and torch.allclose(std, ref_std, atol=1e-5)


def test_grid_covers_the_image_once():
    tiles = tiling.grid(200, 136, 64)
    cover = torch.zeros(200, 136, dtype=torch.int32)
    for t in tiles:
        cover[t.top : t.bottom, t.left : t.right] += 1
        assert t.ctx_top <= t.top and t.ctx_bottom >= t.bottom
        assert all(v % 8 == 0 for v in (t.top, t.left, t.ctx_top, t.ctx_left, t.ctx_bottom, t.ctx_right))
    assert (cover == 1).all()
    assert len(tiling.grid(200, 136, None)) == 1


def test_tiled_output_matches_untiled(stylizer, tmp_path):
    content = make_image(tmp_path / "c.png", (200, 168), seed=7)
    style = make_image(tmp_path / "s.png", (64, 64), seed=8)
    whole = np.asarray(stylizer(content, style))
    tiles = stylizer.with_options(tile=64)
    tiled = np.asarray(tiles(content, style))
    masked_args = dict(mask=make_image(tmp_path / "m.png", (200, 168), seed=9, mode="L"))
    other = make_image(tmp_path / "o.png", (64, 64), seed=10)
    tiled_mask = np.asarray(tiles(content, [style, other], **masked_args))
    untiled_mask = np.asarray(stylizer(content, [style, other], **masked_args))
    assert tiled.shape == whole.shape
    assert psnr(tiled, whole) >= 35
    assert psnr(tiled_mask, untiled_mask) >= 35


def test_memory_budget_picks_tiles(stylizer, tmp_path):
    assert tiling.auto_tile(512, 512, 2048) is None
    side = tiling.auto_tile(4096, 4096, 2048)
    assert (
        side is not None
        and side % 8 == 0
        and (side + 2 * tiling.HALO) ** 2 * tiling.BYTES_PER_PIXEL <= 2048 * 2**20
    )
    with pytest.raises(AdainError, match="too small for a 4096x4096 image"):
        tiling.auto_tile(4096, 4096, 4)
    # a decoder twice as wide has full-resolution layers twice as deep (benchmarks/decoder_width_memory.py),
    # so its tiles hold half the pixels
    wide = tiling.auto_tile(4096, 4096, 2048, decoder_width=2)
    assert (
        (wide + 2 * tiling.HALO) ** 2 * 2 * tiling.BYTES_PER_PIXEL
        <= 2048 * 2**20
        < (side + 2 * tiling.HALO) ** 2 * 2 * tiling.BYTES_PER_PIXEL
    )
    assert (
        tiling.auto_tile(640, 640, 1024) is None
        and tiling.auto_tile(640, 640, 1024, decoder_width=2) is not None
    )


@pytest.mark.parametrize("size", [0, 8, 10**6])
def test_absurd_tile_sizes(size):
    with pytest.raises(AdainError, match="tile size must be between"):
        tiling.check_tile(size)


@pytest.mark.parametrize(("decoder_match", "feedback"), [(0.0, 0.0), (0.75, 0.0), (0.0, 0.5)])
def test_each_tile_is_encoded_once_where_the_budget_keeps_its_features(
    stylizer, tmp_path, monkeypatch, decoder_match, feedback
):
    """Kept between the passes over the tiles (the content statistics', the decoder match's, the
    painting's, feedback's two renders), each tile's features are encoded once, and the image is
    what encoding it in every pass paints."""
    from adain.stylize import Stylizer

    content = make_image(tmp_path / "c.png", (200, 168), seed=7)
    tiles = stylizer.with_options(tile=64, decoder_match=decoder_match, feedback=feedback)
    code = tiles.encode_style(make_image(tmp_path / "s.png", (64, 64), seed=8))
    encoded = []
    real = tiling.tile_encoder

    def counting(padded, encode, memory_format):
        each = real(padded, encode, memory_format)
        return lambda t: encoded.append(t) or each(t)

    monkeypatch.setattr(tiling, "tile_encoder", counting)
    count = len(tiling.grid(200, 168, 64))
    kept = np.asarray(tiles(content, code))
    # feedback also encodes its first render's output, tile by tile
    assert len(encoded) == len(set(encoded)) + (count if feedback else 0) == count * (2 if feedback else 1)
    encoded.clear()
    monkeypatch.setattr(Stylizer, "_kept_features", lambda self, padded, tile: None)
    again = np.asarray(tiles(content, code))
    assert len(encoded) == count * (2 + (2 if decoder_match else 0) + (3 if feedback else 0))
    assert np.array_equal(kept, again)


def test_the_plan_makes_room_for_the_features_where_they_are_a_small_part_of_the_budget():
    side = tiling.auto_tile(3072, 3072, 2048, 100)
    planned = tiling.plan_tiles(3072, 3072, 2048, 100)
    assert planned < side and tiling.features_fit(3072, 3072, planned, 2048, 100)
    assert not tiling.features_fit(3072, 3072, side, 2048, 100)
    # at 4096² they would take over a quarter of 2 GB: the largest tile, encoded in every pass
    assert tiling.plan_tiles(4096, 4096, 2048, 100) == tiling.auto_tile(4096, 4096, 2048, 100)
    assert not tiling.features_fit(4096, 4096, tiling.plan_tiles(4096, 4096, 2048, 100), 2048, 100)
