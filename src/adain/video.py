"""``adain video``: stylize every frame of a video, keeping its size, frame rate, timestamps and
sound (the audio packets are copied as they are, never re-encoded).

AdaIN normalises each frame by its own feature statistics, which jump a little from frame to frame
and show as flicker. ``stable`` smooths those statistics over time with an exponential moving
average before they are used.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from . import images
from .errors import AdainError
from .stylize import Stats, StyleCode, Stylizer


class StatsEMA:
    """Exponential moving average of the content statistics: m <- momentum * m + (1 - momentum) * x."""

    def __init__(self, momentum: float = 0.9) -> None:
        if not 0.0 <= momentum < 1.0:
            raise AdainError(f"stabilisation momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.state: list[Stats | None] | None = None

    def __call__(self, stats: list[Stats | None]) -> list[Stats | None]:
        if self.state is None:
            self.state = list(stats)
            return stats
        m = self.momentum
        self.state = [
            None
            if new is None
            else new
            if old is None
            else (m * old[0] + (1 - m) * new[0], m * old[1] + (1 - m) * new[1])
            for old, new in zip(self.state, stats, strict=True)
        ]
        return self.state


def _open_input(path: Path):
    import av

    if not path.is_file():
        raise AdainError(f"{path}: no such file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise AdainError(f"{path}: not a video file FFmpeg can read ({_first_line(exc)})") from None
    if not container.streams.video:
        container.close()
        raise AdainError(f"{path}: has no video stream")
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):
        container.close()
        raise AdainError(f"{path}: is a still image, not a video (use adain stylize)")
    return container


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def stylize_video(
    stylizer: Stylizer,
    source: str | os.PathLike,
    target: str | os.PathLike,
    styles: Sequence[StyleCode],
    alpha: float = 1.0,
    style_weights: Sequence[float] | None = None,
    stable: float | None = None,
    codec: str = "libx264",
    crf: int = 18,
    overwrite: bool = False,
    progress: bool = True,
    batch: int = 4,
) -> dict:
    """Write ``target`` (through a temporary file and a rename) and return what was done."""
    import av
    from tqdm import tqdm

    source, target = Path(source), Path(target)
    if target.exists() and not overwrite:
        raise AdainError(f"{target} exists (pass --overwrite to replace it)")
    if target.resolve() == source.resolve():
        raise AdainError("the output would replace the input video")
    if _format_for(target) is None:
        raise AdainError(f"{target}: unknown video format {target.suffix!r} (use {', '.join(CONTAINERS)})")
    smooth = StatsEMA(stable) if stable is not None else None
    container = _open_input(source)
    video_in = container.streams.video[0]
    audio_in = container.streams.audio[0] if container.streams.audio else None
    width, height = video_in.codec_context.width, video_in.codec_context.height
    if codec in ("libx264", "libx265", "h264") and (width % 2 or height % 2):
        container.close()
        raise AdainError(
            f"{source}: frames of {width}x{height} have an odd side, which {codec} (yuv420p) cannot encode"
        )
    try:
        av.Codec(codec, "w")
    except Exception:
        container.close()
        raise AdainError(f"unknown or unavailable video codec {codec!r}") from None

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=target.suffix or ".mp4")
    os.close(fd)
    frames = 0
    try:
        with av.open(tmp, mode="w", format=_format_for(target)) as output:
            rate = video_in.average_rate or video_in.guessed_rate or 25
            try:
                video_out = output.add_stream(codec, rate=rate)
            except ValueError as exc:  # the container cannot hold this codec
                raise AdainError(f"{target}: {exc}") from None
            video_out.width, video_out.height = width, height
            video_out.pix_fmt = "yuv420p"
            video_out.time_base = video_in.time_base
            video_out.codec_context.time_base = video_in.time_base
            video_out.options = {"crf": str(crf)} if codec in ("libx264", "libx265") else {}
            audio_out = output.add_stream_from_template(audio_in) if audio_in is not None else None
            total = video_in.frames or None
            bar = tqdm(total=total, desc="video", unit="frame", disable=not progress, dynamic_ncols=True)
            wanted = [video_in] + ([audio_in] if audio_in is not None else [])
            for packet in container.demux(*wanted):
                if packet.stream is audio_in:
                    if packet.dts is None:
                        continue  # the demuxer's flush packet
                    packet.stream = audio_out
                    output.mux(packet)
                    continue
                for frame in packet.decode():
                    rgb = (
                        torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)[None].float()
                        / 255
                    )
                    out = stylizer.stylize_tensor(rgb, styles, alpha, style_weights, smooth)
                    array = out[0].mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
                    new = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
                    new.pts, new.time_base = frame.pts, frame.time_base
                    output.mux(video_out.encode(new))
                    frames += 1
                    bar.update(1)
            output.mux(video_out.encode(None))
            bar.close()
        images.publish(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, (av.error.FFmpegError, OSError)) and not isinstance(exc, FileNotFoundError):
            raise AdainError(f"{source}: the video could not be processed ({_first_line(exc)})") from None
        raise
    finally:
        container.close()
    if frames == 0:
        with contextlib.suppress(OSError):
            os.unlink(target)
        raise AdainError(f"{source}: no frame could be decoded")
    return {
        "frames": frames,
        "width": width,
        "height": height,
        "fps": float(rate),
        "audio": audio_in is not None,
    }


def cut(source: str | os.PathLike, target: str | os.PathLike, seconds: float, audio: bool = True) -> Path:
    """The first ``seconds`` of a video (and its first audio stream), packets copied as they are."""
    import av

    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        wanted = [inp.streams.video[0], *(inp.streams.audio[:1] if audio else [])]
        streams = {s: out.add_stream_from_template(s) for s in wanted}
        for packet in inp.demux(*streams):
            if packet.dts is None or packet.pts is None or packet.pts * packet.time_base >= seconds:
                continue
            packet.stream = streams[packet.stream]
            out.mux(packet)
    return Path(target)


# containers that take H.264 video and the common audio codecs as they are (WebM does neither)
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


def _format_for(path: Path) -> str | None:
    return CONTAINERS.get(path.suffix.lower())
