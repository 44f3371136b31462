"""``adain video``: stylize every frame of a video, keeping its size, frame rate, timestamps and
sound (the audio packets are copied as they are, never re-encoded).

AdaIN normalises each frame by its own feature statistics, which jump a little from frame to frame
and show as flicker. ``stable`` smooths those statistics over time with an exponential moving
average before they are used.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from . import defaults, files
from .errors import AdainError
from .nets import Stats
from .stylize import StyleCode, Stylizer


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
        raise AdainError(f"{path}: not a video file FFmpeg can read ({files.first_line(exc)})") from None
    if not container.streams.video:
        container.close()
        raise AdainError(f"{path}: has no video stream")
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):
        container.close()
        raise AdainError(f"{path}: is a still image, not a video (use adain stylize)")
    return container


def _check_output(source: Path, target: Path, overwrite: bool, codec: str) -> None:
    """Refusals that need no decoding: before any work is done."""
    import av

    if target.exists() and not overwrite:
        raise AdainError(f"{target} exists (pass --overwrite to replace it)")
    if target.resolve() == source.resolve():
        raise AdainError("the output would replace the input video")
    if _format_for(target) is None:
        raise AdainError(f"{target}: unknown video format {target.suffix!r} (use {', '.join(CONTAINERS)})")
    try:
        av.Codec(codec, "w")
    except Exception:
        raise AdainError(f"unknown or unavailable video codec {codec!r}") from None


def _check_frame_size(source: Path, width: int, height: int, codec: str) -> None:
    if codec in ("libx264", "libx265", "h264") and (width % 2 or height % 2):
        raise AdainError(
            f"{source}: frames of {width}x{height} have an odd side, which {codec} (yuv420p) cannot encode"
        )


def stylize_video(
    stylizer: Stylizer,
    source: str | os.PathLike,
    target: str | os.PathLike,
    styles: Sequence[StyleCode],
    alpha: float = 1.0,
    style_weights: Sequence[float] | None = None,
    stable: float | None = None,
    codec: str = defaults.VIDEO_CODEC,
    crf: int = defaults.VIDEO_CRF,
    overwrite: bool = False,
    progress: bool = True,
    batch: int = defaults.VIDEO_BATCH,
) -> dict:
    """Write ``target`` (whole or not at all) and return what was done. Frames are stylized
    ``batch`` at a time (one batch through the networks is faster than its frames one by one)."""
    import av
    from tqdm import tqdm

    source, target = Path(source), Path(target)
    _check_output(source, target, overwrite, codec)
    if batch < 1:
        raise AdainError(f"batch must be at least 1, got {batch}")
    smooth = StatsEMA(stable) if stable is not None else None
    container = _open_input(source)
    try:
        video_in = container.streams.video[0]
        audio_in = container.streams.audio[0] if container.streams.audio else None
        width, height = video_in.codec_context.width, video_in.codec_context.height
        _check_frame_size(source, width, height, codec)
        rate = video_in.average_rate or video_in.guessed_rate or 25

        def paint(frames: list) -> list:
            rgb = torch.stack(
                [torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1) for f in frames]
            )
            out = stylizer.stylize_tensor(rgb.float() / 255, styles, alpha, style_weights, smooth)
            arrays = out.mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            return [_video_frame(array, like) for array, like in zip(arrays, frames, strict=True)]

        bar = tqdm(total=video_in.frames or None, desc="video", unit="frame", disable=not progress,
                   dynamic_ncols=True)  # fmt: skip
        with files.replacing(target) as tmp:
            frames = _transcode(container, tmp, _format_for(target), codec, crf, rate, paint, batch, bar)
            _check_complete(source, frames, _expected_frames(container, rate))
        bar.close()
    except (av.error.FFmpegError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise AdainError(f"{source}: the video could not be processed ({files.first_line(exc)})") from None
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


def _expected_frames(container, rate) -> int | None:
    """How many frames the file says its video has: counted in its header, or its duration (the
    video stream's, else the container's) times the frame rate; None where it says nothing."""
    video = container.streams.video[0]
    if video.frames:
        return int(video.frames)
    if video.duration and video.time_base:
        return round(float(video.duration * video.time_base * rate))
    if container.duration:
        return round(container.duration / 1_000_000 * float(rate))
    return None


def _check_complete(source: Path, frames: int, expected: int | None) -> None:
    """A file cut short or corrupt in the middle decodes to fewer frames than it announces: an
    error, not a shorter video (the partial output is discarded)."""
    if frames and expected and frames < 0.9 * expected - 2:
        raise AdainError(
            f"{source}: only {frames} of its {expected} frames could be decoded (the file is truncated or corrupt)"
        )


def _video_frame(array: np.ndarray, like):
    """An RGB frame for the encoder, with the timing of the decoded frame ``like``."""
    import av

    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
    frame.pts, frame.time_base = like.pts, like.time_base
    return frame


def _transcode(
    container, path: Path, fmt: str | None, codec: str, crf: int, rate, paint, batch: int, bar
) -> int:
    """Decode the first video stream, ``paint`` its frames in batches of ``batch`` (of one size),
    encode them into ``path`` and copy the first audio stream's packets as they are; the number
    of frames written."""
    import av

    video_in = container.streams.video[0]
    audio_in = container.streams.audio[0] if container.streams.audio else None
    with av.open(str(path), mode="w", format=fmt) as output:
        try:
            video_out = output.add_stream(codec, rate=rate)
        except ValueError as exc:  # the container cannot hold this codec
            raise AdainError(f"{path}: {exc}") from None
        video_out.width, video_out.height = video_in.codec_context.width, video_in.codec_context.height
        video_out.pix_fmt = "yuv420p"
        video_out.time_base = video_out.codec_context.time_base = video_in.time_base
        video_out.options = {"crf": str(crf)} if codec in ("libx264", "libx265") else {}
        audio_out = output.add_stream_from_template(audio_in) if audio_in is not None else None
        pending: list = []
        written = 0

        def flush() -> None:
            nonlocal written
            for frame in paint(pending):
                output.mux(video_out.encode(frame))
            written += len(pending)
            bar.update(len(pending))
            pending.clear()

        for packet in container.demux(*[s for s in (video_in, audio_in) if s is not None]):
            if packet.stream is audio_in:
                if packet.dts is not None:  # None: the demuxer's flush packet
                    packet.stream = audio_out
                    output.mux(packet)
                continue
            for frame in packet.decode():
                if pending and (frame.width, frame.height) != (pending[0].width, pending[0].height):
                    flush()
                pending.append(frame)
                if len(pending) == batch:
                    flush()
        if pending:
            flush()
        output.mux(video_out.encode(None))
    return written


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
