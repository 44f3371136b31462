"""Make the README's gallery (docs/gallery/*.jpg) from the canonical images in ../shared/images.

    python scripts/make_gallery.py [--images ../shared/images] [--decoder PATH] [--size 384]

Each file is one strip: content, style(s), results, with captions. Uses the default weights unless
--vgg/--decoder are given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from adain import Stylizer, images

ROOT = Path(__file__).resolve().parent.parent
HEIGHT = 200
GAP = 6
CAPTION = 18

PAIRS = [
    ("cornell", "woman_with_hat_matisse"),
    ("brad_pitt", "picasso_self_portrait"),
    ("chicago", "the_resevoir_at_poitiers"),
    ("sailboat", "sketch"),
    ("golden_gate", "la_muse"),
    ("lenna", "en_campo_gris"),
]


def strip(tiles: list[tuple[Image.Image, str]], height: int = HEIGHT) -> Image.Image:
    """Tiles scaled to one height, side by side on white, each captioned underneath."""
    scaled = [
        (img.convert("RGB").resize((round(img.width * height / img.height), height)), text)
        for img, text in tiles
    ]
    width = sum(img.width for img, _ in scaled) + GAP * (len(scaled) + 1)
    canvas = Image.new("RGB", (width, height + CAPTION + 2 * GAP), "white")
    draw = ImageDraw.Draw(canvas)
    x = GAP
    for img, text in scaled:
        canvas.paste(img, (x, GAP))
        draw.text((x + 2, GAP + height + 3), text, fill=(40, 40, 40))
        x += img.width + GAP
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "images")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery")
    parser.add_argument("--size", type=int, default=384, help="content and style short side")
    parser.add_argument("--vgg", type=Path)
    parser.add_argument("--decoder", type=Path)
    args = parser.parse_args()

    stylizer = Stylizer.from_pretrained(args.vgg, args.decoder)
    content_dir, style_dir = args.images / "content", args.images / "style"

    def content(name: str) -> Path:
        return next(content_dir.glob(f"{name}.*"))

    def style(name: str) -> Path:
        return next(style_dir.glob(f"{name}.*"))

    def load(path: Path, size: int = args.size) -> Image.Image:
        return images.resize_short_side(images.flatten_alpha(images.load_image(path)), size)

    def run(c: Path, s, **controls) -> Image.Image:
        return stylizer(c, s, content_size=args.size, style_size=args.size, **controls)

    args.out.mkdir(parents=True, exist_ok=True)
    written = []

    def save(img: Image.Image, name: str) -> None:
        path = args.out / f"{name}.jpg"
        img.save(path, quality=85, optimize=True)
        written.append(path)

    for c_name, s_name in PAIRS:
        c, s = content(c_name), style(s_name)
        save(strip([(load(c), c_name), (load(s), s_name), (run(c, s), "AdaIN")]), f"pair_{c_name}_{s_name}")

    c, s = content("cornell"), style("woman_with_hat_matisse")
    save(strip([(run(c, s, alpha=a), f"alpha={a}") for a in (0.0, 0.25, 0.5, 0.75, 1.0)]), "alpha")

    c, s1, s2 = content("avril"), style("picasso_self_portrait"), style("impronte_d_artista")
    tiles = [(load(s1), "style 1")]
    tiles += [(run(c, [s1, s2], style_weights=[1 - w, w]), f"w2={w}") for w in (0.0, 0.25, 0.5, 0.75, 1.0)]
    save(strip([*tiles, (load(s2), "style 2")]), "interpolation")

    c, s1, s2 = content("blonde_girl"), style("woman_in_peasant_dress_cropped"), style("mondrian_cropped")
    mask = args.images / "mask" / "mask.png"
    tiles = [
        (load(c), "content"),
        (load(mask), "mask"),
        (load(s1), "white: style 1"),
        (load(s2), "black: style 2"),
    ]
    save(strip([*tiles, (run(c, [s1, s2], mask=mask), "masked")]), "mask")

    c, s = content("newyork"), style("brushstrokes")
    tiles = [(load(c), "content"), (load(s), "style"), (run(c, s), "AdaIN")]
    save(strip([*tiles, (run(c, s, preserve_color=True), "preserve colour")]), "color")

    c, s = content("golden_gate"), style("en_campo_gris")
    fed = stylizer.with_options(feedback=0.5)
    tiles = [(load(c), "content"), (load(s), "style"), (run(c, s), "one pass")]
    for alpha in (0.93, 1.0):
        painted = fed(c, s, alpha=alpha, content_size=args.size, style_size=args.size)
        tiles.append((painted, f"feedback 0.5, alpha={alpha}"))
    save(strip(tiles), "feedback")

    c, s = content("avril"), style("picasso_seated_nude_hr")
    tiles = [(load(c), "content"), (load(s), "style"), (run(c, s), "one pass")]
    for share in (0.25, 0.5):
        tiles.append((stylizer.with_options(palette=share)(c, s, content_size=args.size, style_size=args.size),
                      f"palette {share}"))  # fmt: skip
    save(strip(tiles), "palette")

    c, s = content("cornell"), style("woman_with_hat_matisse")
    tiles = [(load(c), "content"), (load(s), "style")]
    six = stylizer.with_options(decoder_match=0.5, decoder_match_layers=(0, 1, 2, 5, 6, 7))
    for matched in (stylizer.with_options(decoder_match=0), stylizer, six):
        painted = matched(c, s, content_size=args.size, style_size=args.size)
        share, layers = matched.options.decoder_match, matched.options.decoder_match_layers
        label = (
            f"decoder match {share:g}, layers {','.join(map(str, layers))}"
            if share
            else "the paper's one pass"
        )
        tiles.append((painted, f"{label} (the default)" if share and matched is stylizer else label))
    save(strip(tiles), "decoder_match")

    # polish adds grain too fine to see at the strips' scale: 200 px squares cut at 1:1 from 512 px results
    c, s = content("sailboat"), style("sketch")

    def centre(img: Image.Image) -> Image.Image:
        left, top = (img.width - HEIGHT) // 2, (img.height - HEIGHT) // 2
        return img.crop((left, top, left + HEIGHT, top + HEIGHT))

    tiles = [(centre(load(c, 512)), "content (1:1 crop)"), (load(s), "style")]
    for steps in (0, 3, 10):
        polished = stylizer.with_options(polish=steps, max_memory_mb=4096)
        painted = polished(c, s, content_size=512, style_size=512)
        tiles.append((centre(painted), f"polish {steps}" if steps else "one pass"))
    save(strip(tiles), "polish")
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
