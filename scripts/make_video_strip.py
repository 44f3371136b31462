"""The README's video before/after strip: frames of ../shared/images/videos/cutBunny.mp4 above the
same frames of its stylized version (docs/gallery/video_strip.jpg).

    python scripts/make_video_strip.py [--seconds 2] [--frames 4] [--decoder PATH]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import av
from PIL import Image

from adain import Stylizer
from adain.video import FramePainter, cut, stylize_video

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "images"


def pick(path: Path, every: int, count: int) -> list[Image.Image]:
    with av.open(str(path)) as c:
        return [f.to_image() for i, f in enumerate(c.decode(video=0)) if i % every == 0][:count]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--style", type=Path, default=SHARED / "style" / "picasso_self_portrait.jpg")
    parser.add_argument("--decoder", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery" / "video_strip.jpg")
    args = parser.parse_args()
    stylizer = Stylizer.from_pretrained(decoder=args.decoder)
    with tempfile.TemporaryDirectory() as tmp:
        clip = cut(SHARED / "videos" / "cutBunny.mp4", Path(tmp) / "clip.mp4", args.seconds)
        styled = Path(tmp) / "styled.mp4"
        paint = FramePainter(stylizer, [args.style], temporal=0.8, style_size=512)
        stylize_video(paint, clip, styled, crf=12)
        every = max(1, int(24 * args.seconds) // args.frames)
        rows = [pick(clip, every, args.frames), pick(styled, every, args.frames)]
    w, h = rows[0][0].width // 2, rows[0][0].height // 2
    strip = Image.new("RGB", (w * args.frames, h * 2), "white")
    for r, row in enumerate(rows):
        for i, frame in enumerate(row):
            strip.paste(frame.resize((w, h)), (i * w, r * h))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    strip.save(args.out, quality=85, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
