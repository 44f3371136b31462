"""Flicker of a stylized video with and without --stable, measured in one run.

Flicker = mean absolute difference between consecutive output frames divided by the same measure
on the input frames (1.0: the output changes exactly as much as the input does).

    python benchmarks/video_flicker.py [--video ../shared/images/videos/cutBunny.mp4] [--seconds 2] [--momentum 0.9]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import av
import numpy as np
from results_file import add_out_flags, parse_args, write_results

from adain import Stylizer
from adain.video import cut, stylize_video

ROOT = Path(__file__).resolve().parent.parent


def frames(path: Path, limit: int | None = None) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        out = []
        for frame in c.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24").astype(np.float32))
            if limit and len(out) >= limit:
                break
    return out


def change(seq: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(b - a).mean() for a, b in zip(seq[:-1], seq[1:], strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--video", type=Path, default=ROOT.parent / "shared" / "images" / "videos" / "cutBunny.mp4"
    )
    parser.add_argument(
        "--style",
        type=Path,
        default=ROOT.parent / "shared" / "images" / "style" / "woman_with_hat_matisse.jpg",
    )
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--decoder", type=Path)
    add_out_flags(parser, "video_flicker.json")
    args = parse_args(parser)
    stylizer = Stylizer.from_pretrained(decoder=args.decoder)
    style = [stylizer.encode_style(args.style, 512)]
    with tempfile.TemporaryDirectory() as tmp:
        clip = cut(args.video, Path(tmp) / "clip.mp4", args.seconds, audio=False)
        source = frames(clip)
        base = change(source)
        results = {}
        for name, stable in (("plain", None), ("stable", args.momentum)):
            out = Path(tmp) / f"{name}.mp4"
            stylize_video(stylizer, clip, out, style, stable=stable, crf=12, progress=False)
            results[name] = change(frames(out)) / base
    print(f"{len(source)} frames of {args.video.name}, style {args.style.name}")
    print(f"input frame-to-frame change: {base:.2f} (0-255 scale)")
    print(f"flicker (output change / input change): plain {results['plain']:.3f}, "
          f"--stable {args.momentum}: {results['stable']:.3f}, ratio {results['stable'] / results['plain']:.3f}")  # fmt: skip
    row = {"video": args.video.name, "style": args.style.name, "frames": len(source), "momentum": args.momentum,
           "input_change": base, "flicker_plain": results["plain"], "flicker_stable": results["stable"]}  # fmt: skip
    write_results(args.out, row)


if __name__ == "__main__":
    main()
