import numpy as np
import pytest
from PIL import Image

from adain import images
from adain.errors import ImageError

from .conftest import make_image


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "1", "RGBA", "LA", "I;16", "I", "F"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    suffix = {"CMYK": ".jpg", "F": ".tif", "I": ".tif", "I;16": ".png"}.get(mode, ".png")
    path = tmp_path / f"img{suffix}"
    base = make_image(tmp_path / "base.png", (30, 20))
    img = Image.open(base).convert("L" if mode in ("I;16", "I", "F") else "RGB")
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img, dtype=np.uint16) * 257)
    elif mode in ("I", "F"):
        img = img.convert(mode)
    else:
        img = img.convert(mode)
    img.save(path)
    rgb, alpha = images.split_alpha(images.load_image(path))
    assert rgb.mode == "RGB" and rgb.size == (30, 20)
    assert (alpha is not None) == (mode in ("RGBA", "LA"))
    if mode in ("I;16", "I", "L"):  # 16-bit scaled down to the same 8-bit picture
        gray = np.asarray(Image.open(base).convert("L"), dtype=np.int16)
        assert np.abs(np.asarray(rgb)[..., 0].astype(np.int16) - gray).max() <= 1


def test_palette_transparency_is_alpha(tmp_path):
    img = Image.new("P", (20, 20))
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.info["transparency"] = 0
    path = tmp_path / "p.png"
    img.save(path, transparency=0)
    rgb, alpha = images.split_alpha(images.load_image(path))
    assert alpha is not None and alpha.getextrema() == (0, 0)


def test_exif_orientation_is_honoured(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif)
    assert images.load_image(path).size == (20, 40)


@pytest.mark.parametrize(
    "content,message",
    [(b"", "empty file"), (b"hello, this is text", "not an image"), (None, "corrupt or truncated")],
)
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    if content is None:  # a real JPEG cut in half
        good = make_image(tmp_path / "good.jpg", (200, 200))
        content = good.read_bytes()[: good.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message):
        images.load_image(path)


def test_missing_and_directory(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        images.load_image(tmp_path / "none.png")
    with pytest.raises(ImageError, match="is a directory"):
        images.load_image(tmp_path)


def test_decompression_bomb_guard_and_override(tmp_path):
    path = make_image(tmp_path / "big.png", (300, 200))
    with pytest.raises(ImageError, match="over the limit of 50,000.*--max-pixels"):
        images.load_image(path, max_pixels=50_000)
    assert images.load_image(path, max_pixels=60_000).size == (300, 200)
    assert Image.MAX_IMAGE_PIXELS == images.MAX_PIXELS  # the global guard is restored


def test_save_is_atomic_and_refuses_to_overwrite(tmp_path):
    img = Image.new("RGB", (10, 10), (1, 2, 3))
    out = tmp_path / "out.png"
    images.save_image(img, out)
    with pytest.raises(ImageError, match="exists"):
        images.save_image(Image.new("RGB", (10, 10)), out)
    assert Image.open(out).getpixel((0, 0)) == (1, 2, 3)
    images.save_image(Image.new("RGB", (10, 10)), out, overwrite=True)
    assert Image.open(out).getpixel((0, 0)) == (0, 0, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temp files left


def test_unwritable_destination_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(ImageError, match="cannot write"):
        images.save_image(Image.new("RGB", (4, 4)), blocker / "out.png")


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    def broken(self, fp, *args, **kwargs):
        fp.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(ImageError, match="cannot write .*disk full"):
        images.save_image(Image.new("RGB", (4, 4)), tmp_path / "x.jpg")
    assert list(tmp_path.iterdir()) == []


def test_alpha_kept_only_where_the_format_keeps_it(tmp_path):
    img = Image.new("RGB", (8, 8), (9, 9, 9))
    alpha = Image.new("L", (8, 8), 100)
    images.save_image(img, tmp_path / "a.png", alpha=alpha)
    images.save_image(img, tmp_path / "a.jpg", alpha=alpha)
    assert Image.open(tmp_path / "a.png").mode == "RGBA"
    assert Image.open(tmp_path / "a.jpg").mode == "RGB"


def test_unknown_output_extension(tmp_path):
    with pytest.raises(ImageError, match="cannot tell the output format"):
        images.save_format(tmp_path / "out.xyz")


def test_resize_and_crop():
    img = Image.new("RGB", (300, 200))
    assert images.resize_short_side(img, 100).size == (150, 100)
    assert images.resize_short_side(img, 0).size == (300, 200)
    assert images.center_crop(img, 120).size == (120, 120)


def test_saved_files_get_the_usual_permissions(tmp_path):
    """Atomic writes go through mkstemp (owner-only); the result must be readable as usual."""
    import os

    previous = os.umask(0o022)
    try:
        path = images.save_image(Image.new("RGB", (8, 8)), tmp_path / "out.png")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644
