"""Temporal consistency of stylized video: warping error, style loss and speed, plain against
``--temporal``, measured in one run.

Warping error (Lai et al., ECCV 2018): the mean over frame pairs of the mean squared RGB difference
(in [0, 1]) between output frame t and output frame t-1 carried to t along the optical flow of the
*input* frames, over non-occluded pixels (forward-backward consistency). The flow that measures is
OpenCV's Farneback, not the DIS flow that ``--temporal`` itself uses, so the method is not judged
by its own flow; on the synthetic camera move the true flow and visibility are used instead.

Per-frame style loss: the training loss's style term of each 4th output frame against the style
image at 512 px (so steadiness is not bought by washing the style out).

Throughput: ``adain video`` end to end (decoding, networks, blend, encoding) on 640x360 and
1280x720 clips, plain and temporal taking turns.

    python benchmarks/video_consistency.py [--frames 48] [--strength 0.8] [--decoder D]
    python benchmarks/video_consistency.py --sweep   # renew x stretch on the two clips
    python benchmarks/video_consistency.py --feedback 0.5 --out benchmarks/results/video_consistency-feedback.json
    python benchmarks/video_consistency.py --palette 0.25 --out benchmarks/results/video_consistency-palette.json
    python benchmarks/video_consistency.py --decoder-match 0.75 --out benchmarks/results/video_consistency-match.json

``--sweep`` measures the trade-off of ``FlowBlend``'s stroke settings instead: warping error and
style loss against the plain output at strength 0.8 for strokes renewed every 20 / 12 / 8 frames,
each sooner where the motion stretches them (``stretch`` 0 / 0.25 / 0.5 / 1; no timing;
``video_consistency-sweep.json``).

Modes: the input itself, the plain per-frame output, ``--temporal`` and, to show why strokes are
renewed, ``--temporal`` with its strokes never renewed (``FlowBlend(renew=0)``). ``--feedback S``
adds the per-frame output painted twice (``adain video --feedback S``: each frame's own miss moves
its targets, so the second pass may flicker where the first did not) and that output through
``--temporal``, and times it too; ``--palette S`` likewise adds the output with its colours moved
towards the style's (``adain video --palette S``: each frame recoloured from its own statistics),
and says what the recolouring does to the plain frames: its mean squared gain on their colours'
deviations (above 1: more contrast, and the plain output's own flicker amplified with it) and how
much its 3x3 transform changes from one frame to the next, against its size. ``--decoder-match S``
adds the output with the decoder's layers moved towards the style's own statistics (``adain video
--decoder-match S``: each frame's maps measured on that frame). Given several, the variant has all.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image
from results_file import add_out_flags, parse_args, write_results

from adain import Stylizer, defaults
from adain.colour import colour_transform, palette_of
from adain.losses import style_loss
from adain.nets import taps
from adain.temporal import FlowBlend, camera_move, reference_flows, warping_error
from adain.video import FramePainter, stylize_video

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
VIDEOS = SHARED / "images" / "videos"
PAN_PHOTO = SHARED / "data" / "content" / "train512" / "content_0004.jpg"


def decode(path: Path, limit: int) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        out = []
        for frame in c.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == limit:
                break
    return out


class StyleLoss:
    def __init__(self, stylizer: Stylizer, style: Path) -> None:
        self.stylizer = stylizer
        with torch.inference_mode():
            self.style_taps = taps(stylizer.encode_fp32, stylizer.style_tensor(style, 512))

    @torch.inference_mode()
    def __call__(self, frames: list[np.ndarray]) -> float:
        values = []
        for frame in frames[::4]:
            x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float() / 255
            values.append(style_loss(taps(self.stylizer.encode_fp32, x), self.style_taps).item())
        return float(np.mean(values))


def per_frame(stylizer: Stylizer, style: Path, frames: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    """The plain per-frame results as floats 0-255 (before rounding) and the seconds they took."""
    paint = FramePainter(stylizer, [style], style_size=512)
    start = time.perf_counter()
    results = []
    for i in range(0, len(frames), 4):
        results.extend(paint.per_frame(frames[i : i + 4]))
    return results, time.perf_counter() - start


def clips(frame_count: int) -> Iterator[tuple[str, list[np.ndarray], list[np.ndarray], list[np.ndarray]]]:
    """(name, frames, reference flows, their masks) of each of the two clips."""
    for name in ("cutBunny.mp4", "sintel_gif_clip.mp4"):
        frames = decode(VIDEOS / name, frame_count)
        yield name, frames, *reference_flows(frames)


def blended(frames: list[np.ndarray], plain: list[np.ndarray], **options) -> list[np.ndarray]:
    """The per-frame results through a ``FlowBlend`` made with ``options``."""
    blend = FlowBlend(**options)
    return [blend(f, r) for f, r in zip(frames, plain, strict=True)]


def variant_name(variant: dict[str, float]) -> str:
    return ", ".join(f"{option} {value:g}" for option, value in variant.items())


def measure_clip(name, frames, flows, masks, stylizer, style, strength, loss, variant) -> dict:
    """Warping error and style loss of each mode on one clip; ``variant``: stylizer options (such
    as feedback or palette) whose output is measured too, plain and through ``--temporal``."""
    plain, seconds = per_frame(stylizer, style, frames)
    modes = {"input": frames, "plain": plain}
    for label, options in ((f"temporal {strength:g}", {}), ("never renewed", {"renew": 0})):
        modes[label] = blended(frames, plain, strength=strength, **options)
    if variant:
        other, _ = per_frame(stylizer.with_options(**variant), style, frames)
        modes[variant_name(variant)] = other
        modes[f"{variant_name(variant)}, temporal {strength:g}"] = blended(frames, other, strength=strength)
    row = {"clip": name, "frames": len(frames), "size": list(frames[0].shape[1::-1]), "modes": {}}
    if variant.get("palette"):
        row["palette_transform"] = palette_gain(stylizer, style, rounded(plain), variant["palette"])
    for mode, outputs in modes.items():
        outputs = rounded(outputs)
        row["modes"][mode] = {
            "warping_error": warping_error(outputs, flows, masks),
            "style_loss": None if mode == "input" else loss(outputs),
        }
    plain_error = row["modes"]["plain"]["warping_error"]
    for mode in modes:
        row["modes"][mode]["vs_plain"] = row["modes"][mode]["warping_error"] / plain_error
    print(
        f"{name}: {len(frames)} frames {row['size'][0]}x{row['size'][1]}, per-frame stylization {seconds:.1f} s"
    )
    for mode, values in row["modes"].items():
        sl = "" if values["style_loss"] is None else f", style loss {values['style_loss']:.3f}"
        print(
            f"  {mode:14s} warping error {values['warping_error']:.5f} ({values['vs_plain']:.2f}x plain){sl}"
        )
    return row


def palette_gain(stylizer: Stylizer, style: Path, outputs: list[np.ndarray], share: float) -> dict:
    """What ``--palette share`` does to these plain frames: the mean squared gain of its map on
    their colours' deviations (trace(M^T M) / 3 with M = (1 - share) I + share T, T each frame's
    colour transform to the style's palette) and the mean change of M from frame to frame over
    its mean size (Frobenius norms)."""
    target = palette_of(stylizer.style_tensor(style, 512))
    maps = []
    for frame in outputs:
        x = torch.from_numpy(frame).permute(2, 0, 1)[None].double() / 255
        transform = colour_transform(palette_of(x), target)
        maps.append((1 - share) * torch.eye(3, dtype=torch.float64) + share * transform)
    m = torch.stack(maps)
    gain = torch.einsum("nij,nij->n", m, m).mean().item() / 3
    change = (m[1:] - m[:-1]).norm(dim=(1, 2)).mean().item() / m.norm(dim=(1, 2)).mean().item()
    print(
        f"  palette {share:g} on the plain frames: squared gain {gain:.3f}, frame-to-frame change {change:.2%}"
    )
    return {"squared_gain": gain, "frame_to_frame_change": change}


def sweep(stylizer: Stylizer, style: Path, loss: StyleLoss, frame_count: int) -> list[dict]:
    """Warping error and style loss of ``FlowBlend`` against the plain output over its stroke settings."""
    rows = []
    for name, frames, flows, masks in clips(frame_count):
        plain, _ = per_frame(stylizer, style, frames)
        plain_error, plain_loss = warping_error(rounded(plain), flows, masks), loss(rounded(plain))
        for renew in (20, 12, 8):
            for stretch in (0.0, 0.25, 0.5, 1.0):
                out = rounded(blended(frames, plain, strength=0.8, renew=renew, stretch=stretch))
                row = {"clip": name, "strength": 0.8, "renew": renew, "stretch": stretch,
                       "warping_vs_plain": warping_error(out, flows, masks) / plain_error,
                       "style_loss_vs_plain": loss(out) / plain_loss}  # fmt: skip
                rows.append(row)
                print(f"{name:20s} renew {renew:2d}, stretch {stretch:g}: warping error "
                      f"{row['warping_vs_plain']:.2f}x plain, style loss {row['style_loss_vs_plain'] - 1:+.1%}",
                      flush=True)  # fmt: skip
    return rows


def rounded(outputs: list[np.ndarray]) -> list[np.ndarray]:
    """Output frames as they are written: 8-bit."""
    return [np.clip(o, 0, 255).round().astype(np.uint8) for o in outputs]


def scaled_clip(source: Path, target: Path, size: tuple[int, int], frames: int) -> Path:
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        stream = out.add_stream("libx264", rate=inp.streams.video[0].average_rate)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"crf": "12"}
        for i, frame in enumerate(inp.decode(video=0)):
            if i == frames:
                break
            out.mux(stream.encode(frame.reformat(width=size[0], height=size[1], format="yuv420p")))
        out.mux(stream.encode(None))
    return target


def throughput(stylizer, style, tmp: Path, strength: float, frames: dict[str, int], variant) -> dict:
    """Frames per second of ``stylize_video``, plain and temporal (and with ``variant``'s options,
    plain) taking turns on each clip."""
    code = [stylizer.with_options(**variant).encode_style(style, 512)]  # with all a variant needs of it
    modes = {"plain": (stylizer, None), "temporal": (stylizer, strength)}
    if variant:
        modes[variant_name(variant)] = (stylizer.with_options(**variant), None)
    result = {}
    for (width, height), count in ((640, 360), frames["360p"]), ((1280, 720), frames["720p"]):
        clip = scaled_clip(VIDEOS / "cutBunny.mp4", tmp / f"{height}p.mp4", (width, height), count)
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        for _ in range(2):
            for mode, (painter, temporal) in modes.items():
                start = time.perf_counter()
                paint = FramePainter(painter, code, temporal=temporal)
                stylize_video(paint, clip, tmp / "out.mp4", overwrite=True, progress=False)
                times[mode].append(time.perf_counter() - start)
        fps = {mode: count / min(values) for mode, values in times.items()}
        ratios = {f"{mode}_vs_plain": fps[mode] / fps["plain"] for mode in modes if mode != "plain"}
        result[f"{width}x{height}"] = {**fps, **ratios, "frames": count}
        print(f"{width}x{height}: " + ", ".join(f"{mode} {value:.2f} fps" for mode, value in fps.items()))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--style", type=Path, default=SHARED / "images" / "style" / "woman_with_hat_matisse.jpg"
    )
    parser.add_argument("--frames", type=int, default=48, help="frames of each clip measured")
    parser.add_argument("--strength", type=float, default=defaults.TEMPORAL_STRENGTH)
    parser.add_argument("--fps-frames", default="12,4", help="frames timed at 640x360 and 1280x720")
    parser.add_argument("--decoder", type=Path)
    parser.add_argument("--sweep", action="store_true", help="strength x renew instead (see above)")
    parser.add_argument(
        "--feedback", type=float, default=0.0, help="also the output painted twice (see above)"
    )
    parser.add_argument(
        "--palette", type=float, default=0.0, help="also the output in the style's colours (see above)"
    )
    parser.add_argument("--decoder-match", type=float, default=0.0,
                        help="also the output with the decoder's layers matched (see above)")  # fmt: skip
    add_out_flags(parser, "video_consistency.json")
    sweeping = parser.parse_known_args()[0].sweep  # which file --out defaults to
    if sweeping:
        parser.set_defaults(out=parser.get_default("out").with_name("video_consistency-sweep.json"))
    args = parse_args(parser)
    # the plain output, the options on top
    stylizer = Stylizer.from_pretrained(decoder=args.decoder, decoder_match=0)
    loss = StyleLoss(stylizer, args.style)
    options = ("feedback", "palette", "decoder_match")
    variant = {option: value for option in options if (value := getattr(args, option))}
    if sweeping:
        write_results(args.out, {"style": args.style.name, "frames": args.frames,
                                 "rows": sweep(stylizer, args.style, loss, args.frames)})  # fmt: skip
        return
    rows = [
        measure_clip(name, frames, flows, masks, stylizer, args.style, args.strength, loss, variant)
        for name, frames, flows, masks in clips(args.frames)
    ]
    photo = np.asarray(Image.open(PAN_PHOTO).convert("RGB"))
    pan = camera_move(photo, args.frames, (640, 360))
    pan_name = f"pan and zoom over {PAN_PHOTO.name}"
    rows.append(measure_clip(pan_name, *pan, stylizer, args.style, args.strength, loss, variant))
    counts = dict(zip(("360p", "720p"), (int(n) for n in args.fps_frames.split(",")), strict=True))
    with tempfile.TemporaryDirectory() as tmp:
        speed = throughput(stylizer, args.style, Path(tmp), args.strength, counts, variant)
    write_results(args.out, {"style": args.style.name, "feedback": args.feedback, "palette": args.palette,
                             "decoder_match": args.decoder_match, "clips": rows, "throughput": speed,
                             "flow_for_measuring": "OpenCV Farneback (true flow for the camera move)"})  # fmt: skip


if __name__ == "__main__":
    main()
