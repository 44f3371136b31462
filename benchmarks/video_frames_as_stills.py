"""Why the decoder match loses on some video clips: the same frames painted as stills, per style.

``video_consistency.py --decoder-match 0.75`` measured the per-frame style loss of one style
(``woman_with_hat_matisse.jpg``) on three clips, and the match raised it on two. A clip's frame is
painted as a still (each frame's maps are measured on that frame), so what is left to tell apart
is the style and the frame's size. This paints every ``--every``-th of the first ``--frames``
frames of each clip, plain and with the options given, for each style, at the frame's own size and
with its short side at 512 px, and reports the style loss of the option's frames over the plain
ones' (the training loss's style term against the style at 512 px, as the video benchmark
measures it), and the content loss likewise.

    python benchmarks/video_frames_as_stills.py [--decoder-match 0.75] [--styles DIR] [--every 8]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from results_file import add_out_flags, parse_args, write_results
from video_consistency import PAN_PHOTO, SHARED, VIDEOS, decode

from adain import Stylizer, images
from adain.losses import content_loss, style_loss
from adain.nets import taps
from adain.temporal import camera_move


def clip_frames(count: int, every: int) -> dict[str, list[Image.Image]]:
    """Every ``every``-th of the first ``count`` frames of the two clips and the camera move."""
    clips = {name: decode(VIDEOS / name, count) for name in ("cutBunny.mp4", "sintel_gif_clip.mp4")}
    clips["camera move"] = camera_move(np.asarray(Image.open(PAN_PHOTO).convert("RGB")), count, (640, 360))[0]
    return {name: [Image.fromarray(f) for f in frames[::every]] for name, frames in clips.items()}


class Style:
    def __init__(self, stylizer: Stylizer, matching: Stylizer, path: Path) -> None:
        with torch.inference_mode():
            self.taps = taps(stylizer.encode_fp32, stylizer.style_tensor(path, 512))
            self.code = matching.encode_style(path, 512)  # with all the options need of it


@torch.inference_mode()
def losses(
    stylizer: Stylizer, frame: Image.Image, content_feat: torch.Tensor, style: Style
) -> tuple[float, float]:
    """(content loss, style loss) of ``stylizer``'s painting of ``frame`` in ``style``, as ``adain
    eval`` measures them: against the frame's relu4_1 ``content_feat`` and the style's four taps."""
    out_taps = taps(stylizer.encode_fp32, images.to_tensor(stylizer(frame, style.code)))
    return content_loss(out_taps[-1], content_feat).item(), style_loss(out_taps, style.taps).item()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--styles", type=Path, default=SHARED / "images" / "style")
    parser.add_argument("--frames", type=int, default=48, help="the first this many frames of each clip")
    parser.add_argument("--every", type=int, default=8, help="paint every this many of them")
    parser.add_argument("--decoder-match", type=float, default=0.75)
    parser.add_argument("--palette", type=float, default=0.0)
    parser.add_argument("--feedback", type=float, default=0.0)
    parser.add_argument("--decoder", type=Path)
    add_out_flags(parser, "video_frames_as_stills.json")
    args = parse_args(parser)
    plain = Stylizer.from_pretrained(decoder=args.decoder, decoder_match=0)
    options = {k: v for k in ("decoder_match", "palette", "feedback") if (v := getattr(args, k))}
    variant = plain.with_options(**options)
    styles = images.find_images(args.styles)
    clips = clip_frames(args.frames, args.every)
    rows = []
    for style_path in styles:
        style = Style(plain, variant, style_path)
        for clip, frames in clips.items():
            for size in ("frame", "512"):
                measured = {"plain": [], "variant": []}
                for frame in frames:
                    if size == "512":
                        frame = images.resize_short_side(frame, 512)
                    with torch.inference_mode():  # one encoding of the frame for both paintings
                        content_feat = plain.encode_fp32(images.to_tensor(frame))
                    for name, stylizer in (("plain", plain), ("variant", variant)):
                        measured[name].append(losses(stylizer, frame, content_feat, style))
                (pc, ps), (vc, vs) = (np.mean(measured[n], axis=0).tolist() for n in ("plain", "variant"))
                rows.append({"style": style_path.name, "clip": clip, "size": size, "content_plain": pc,
                             "style_plain": ps, "content_variant": vc, "style_variant": vs})  # fmt: skip
                print(f"{style_path.name:36s} {clip:20s} {size:5s} style {ps:.3f} -> {vs:.3f} "
                      f"({vs / ps - 1:+.1%}), content {vc / pc - 1:+.1%}", flush=True)  # fmt: skip
    print(f"\n| clip | size | style, variant over plain (mean over {len(styles)} styles) | styles lower | "
          "woman_with_hat_matisse.jpg |")  # fmt: skip
    print("|---|---|---:|---:|---:|")
    summary = []
    for clip in clips:
        for size in ("frame", "512"):
            chosen = [r for r in rows if r["clip"] == clip and r["size"] == size]
            ratio = np.mean([r["style_variant"] for r in chosen]) / np.mean(
                [r["style_plain"] for r in chosen]
            )
            lower = sum(r["style_variant"] < r["style_plain"] for r in chosen)
            matisse = [r["style_variant"] / r["style_plain"] - 1 for r in chosen if "matisse" in r["style"]]
            summary.append({"clip": clip, "size": size, "style_ratio": ratio, "styles_lower": lower})
            print(f"| {clip} | {size} | {ratio - 1:+.1%} | {lower} of {len(chosen)} | "
                  f"{f'{matisse[0]:+.1%}' if matisse else ''} |")  # fmt: skip
    write_results(args.out, {"options": options, "frames": args.frames, "every": args.every,
                             "rows": rows, "summary": summary})  # fmt: skip


if __name__ == "__main__":
    main()
