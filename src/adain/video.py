"""``adain video``: stylize every frame of a video, keeping its size, frame rate, timestamps and
sound (the audio packets are copied as they are, never re-encoded).

Painted frame by frame, AdaIN's strokes boil; ``temporal`` carries each result along the input's
optical flow into the next frame (``temporal.py``). An earlier ``stable`` mode smoothed the content
statistics over time instead and measured no effect on flicker (2.90 plain, 2.91 smoothed, on
cutBunny: ``benchmarks/video_flicker.py`` at commit a599fe8); its name is kept as an alias of
``temporal``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from queue import Empty, Full, Queue

import numpy as np
import torch

from . import defaults, files, images
from .colour import match_color
from .errors import AdainError
from .stylize import ImageLike, StyleCode, StyleLike, Stylizer, check_controls, check_palette


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


class FramePainter:
    """Frames in, stylized frames out, in order: the networks on batches of frames, then the
    temporal blend (``temporal.FlowBlend``), if any, frame by frame.

    styles: images or encoded styles (``StyleCode``); ``preserve_color`` needs the images, each
    recoloured to every frame's colours and encoded again (about twice the work per frame).
    """

    def __init__(
        self,
        stylizer: Stylizer,
        styles: Sequence[StyleLike],
        alpha: float = 1.0,
        style_weights: Sequence[float] | None = None,
        mask: ImageLike | None = None,
        preserve_color: bool = False,
        temporal: float | None = None,
        style_size: int = defaults.STYLE_SIZE,
    ) -> None:
        check_controls(alpha, len(styles), style_weights, mask is not None)
        if preserve_color and any(isinstance(s, StyleCode) for s in styles):
            raise AdainError("preserve_color needs the style images, not encoded styles")
        if stylizer.options.palette:
            check_palette(styles, preserve_color)
        self.stylizer, self.alpha, self.style_weights = stylizer, alpha, style_weights
        if isinstance(mask, (str, os.PathLike)):  # read once, not once a batch
            mask = images.load_image(mask, stylizer.options.max_pixels)
        self.mask = mask
        if preserve_color:
            self.style_images = [stylizer.style_tensor(s, style_size) for s in styles]
            self.codes = None
        else:
            self.style_images = None
            self.codes = [stylizer.encode_style(s, style_size) for s in styles]
        self.blend = None
        if temporal is not None:
            from .temporal import FlowBlend

            self.blend = FlowBlend(strength=temporal)

    def __call__(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """(H, W, 3) uint8 RGB frames of one size, in order -> their stylized frames."""
        out = self.per_frame(frames)
        if self.blend is not None:
            out = [self.blend(frame, result) for frame, result in zip(frames, out, strict=True)]
        return [np.clip(result, 0, 255).round().astype(np.uint8) for result in out]

    def per_frame(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The plain per-frame results of a batch, (H, W, 3) float32 in 0-255, before any blend."""
        x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255)
        return list(self._stylize(x).mul(255).permute(0, 2, 3, 1).float().cpu().numpy())

    def _stylize(self, x: torch.Tensor) -> torch.Tensor:
        run = self.stylizer.stylize_tensor
        if self.style_images is None:
            return run(x, self.codes, self.alpha, self.style_weights, mask=self.mask)
        results = []
        for frame in x.split(1):
            frame = frame.to(self.stylizer.device)
            codes = [self.stylizer.encode_style(match_color(s, frame)[0]) for s in self.style_images]
            results.append(run(frame, codes, self.alpha, self.style_weights, mask=self.mask))
        return torch.cat(results)

    @property
    def scene_cuts(self) -> int:
        return 0 if self.blend is None else self.blend.cuts


def stylize_video(
    paint: FramePainter,
    source: str | os.PathLike,
    target: str | os.PathLike,
    codec: str = defaults.VIDEO_CODEC,
    crf: int = defaults.VIDEO_CRF,
    overwrite: bool = False,
    progress: bool = True,
    batch: int = defaults.VIDEO_BATCH,
) -> dict:
    """Write ``target`` (whole or not at all), each frame painted by ``paint``, and return what was
    done: frames, scaled_frames, width, height, fps, audio, scene_cuts.

        paint = FramePainter(stylizer, ["painting.jpg"], alpha=0.8, temporal=0.8)
        stylize_video(paint, "clip.mp4", "painted.mp4")

    Frames are stylized ``batch`` at a time (one batch through the networks is faster than its
    frames one by one) while a reader thread decodes the next ones and a writer thread encodes the
    last ones.
    """
    import av
    from tqdm import tqdm

    source, target = Path(source), Path(target)
    _check_output(source, target, overwrite, codec)
    if batch < 1:
        raise AdainError(f"batch must be at least 1, got {batch}")
    container = _open_input(source)
    try:
        video_in = container.streams.video[0]
        audio_in = container.streams.audio[0] if container.streams.audio else None
        width, height = video_in.codec_context.width, video_in.codec_context.height
        _check_frame_size(source, width, height, codec)
        rate = video_in.average_rate or video_in.guessed_rate or 25
        bar = tqdm(total=video_in.frames or None, desc="video", unit="frame", disable=not progress,
                   dynamic_ncols=True)  # fmt: skip
        with files.replacing(target) as tmp:
            done = _transcode(container, tmp, _format_for(target), codec, crf, rate, paint, batch, bar)
            _check_complete(source, container, done)
        bar.close()
    except (av.error.FFmpegError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise AdainError(f"{source}: the video could not be processed ({files.first_line(exc)})") from None
    finally:
        container.close()
    if done["frames"] == 0:
        with contextlib.suppress(OSError):
            os.unlink(target)
        raise AdainError(f"{source}: no frame could be decoded")
    return {
        "frames": done["frames"],
        "scaled_frames": done["scaled_frames"],
        "width": width,
        "height": height,
        "fps": float(rate),
        "audio": audio_in is not None,
        "scene_cuts": paint.scene_cuts,
    }


def _check_complete(source: Path, container, done: dict) -> None:
    """A file cut short or corrupt in the middle decodes to fewer frames than it announces, or
    stops well before its announced duration: an error, not a shorter video (the partial output is
    discarded). Durations, not frame counts, where the header has no count: a variable frame rate
    makes duration x rate no count at all."""
    video, frames = container.streams.video[0], done["frames"]
    if not frames:
        return
    if video.frames:
        if frames < 0.9 * video.frames - 2:
            raise AdainError(
                f"{source}: only {frames} of its {video.frames} frames could be decoded (the file is truncated or corrupt)"
            )
        return
    if video.duration and video.time_base:
        duration = float(video.duration * video.time_base) + (
            float(video.start_time * video.time_base) if video.start_time else 0.0
        )
    elif container.duration:
        duration = container.duration / 1_000_000
    else:
        return
    reached = done["end_time"]
    if reached is not None and reached < 0.9 * duration - 0.1:
        raise AdainError(
            f"{source}: only {frames} frames could be decoded, up to {reached:.2f} s of its {duration:.2f} s "
            "(the file is truncated or corrupt)"
        )


def _video_frame(array: np.ndarray, like):
    """An RGB frame for the encoder, with the timing of the decoded frame ``like``."""
    import av

    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
    frame.pts, frame.time_base = like.pts, like.time_base
    return frame


def _transcode(
    container, path: Path, fmt: str | None, codec: str, crf: int, rate, paint: FramePainter, batch: int, bar
) -> dict:
    """Decode the first video stream, ``paint`` its frames in batches of ``batch``, encode them
    into ``path`` and copy the first audio stream's packets as they are. Decoding runs in a reader
    thread and encoding in a writer thread, so both overlap the networks; each container is used
    by one thread at a time. A frame whose size differs from the stream's is scaled to it (an
    encoder takes one size). What was written: frames, and frames that had to be scaled."""
    import av

    video_in = container.streams.video[0]
    audio_in = container.streams.audio[0] if container.streams.audio else None
    width, height = video_in.codec_context.width, video_in.codec_context.height
    stop = threading.Event()
    with av.open(str(path), mode="w", format=fmt) as output:
        try:
            video_out = output.add_stream(codec, rate=rate)
        except ValueError as exc:  # the container cannot hold this codec
            raise AdainError(f"{path}: {exc}") from None
        video_out.width, video_out.height = width, height
        video_out.pix_fmt = "yuv420p"
        video_out.time_base = video_out.codec_context.time_base = video_in.time_base
        video_out.options = {"crf": str(crf)} if codec in ("libx264", "libx265") else {}
        audio_out = output.add_stream_from_template(audio_in) if audio_in is not None else None
        scaled = 0
        end_time: list[float | None] = [None]  # when the last decoded frame ends

        def decoded():  # in the reader thread
            nonlocal scaled
            last_pts = None
            for packet in container.demux(*[s for s in (video_in, audio_in) if s is not None]):
                if packet.stream is audio_in:
                    if packet.dts is not None:  # None: the demuxer's flush packet
                        yield packet
                    continue
                for frame in packet.decode():
                    if frame.pts is not None and last_pts is not None and frame.pts <= last_pts:
                        raise AdainError(
                            f"{container.name}: frame timestamps go backwards at {float(frame.pts * frame.time_base):.3f} s "
                            "(pieces joined without re-muxing?); re-mux the file first"
                        )
                    if frame.pts is not None:
                        last_pts, end_time[0] = (
                            frame.pts,
                            float((frame.pts + (frame.duration or 0)) * frame.time_base),
                        )
                    if (frame.width, frame.height) != (width, height):
                        scaled += 1
                        frame = _scaled(frame, width, height)
                    yield frame

        def write(item) -> None:  # in the writer thread
            if isinstance(item, av.Packet):
                item.stream = audio_out
                output.mux(item)
            else:
                array, like = item
                output.mux(video_out.encode(_video_frame(array, like)))
                bar.update(1)

        writer = _Worker(write, stop)
        reader = _ahead(decoded(), 2 * batch)
        pending: list = []
        written = 0
        try:
            for item in reader:
                if isinstance(item, av.Packet):
                    writer.put(item)
                    continue
                pending.append(item)
                if len(pending) == batch:
                    written += _paint_batch(paint, pending, writer)
            if pending:
                written += _paint_batch(paint, pending, writer)
            writer.finish()
        finally:
            reader.close()
            stop.set()
            writer.join()
        output.mux(video_out.encode(None))
    return {"frames": written, "scaled_frames": scaled, "end_time": end_time[0]}


def _paint_batch(paint: FramePainter, frames: list, writer: _Worker) -> int:
    arrays = paint([frame.to_ndarray(format="rgb24") for frame in frames])
    for array, like in zip(arrays, frames, strict=True):
        writer.put((array, like))
    count = len(frames)
    frames.clear()
    return count


def _scaled(frame, width: int, height: int):
    scaled = frame.reformat(width=width, height=height)
    scaled.pts, scaled.time_base = frame.pts, frame.time_base
    return scaled


_DONE = object()


def _ahead(items: Iterator, depth: int) -> Iterator:
    """``items``, produced in a thread up to ``depth`` ahead of the consumer; its exception is
    raised here, and closing this generator stops the thread."""
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(_DONE)
        except BaseException as exc:  # handed to the consumer
            offer(exc)

    thread = threading.Thread(target=produce, name="adain-video-reader", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class _Worker:
    """A thread that calls ``handle`` on each item put, in order; its exception is raised in the
    caller at the next ``put`` or at ``finish``."""

    def __init__(self, handle, stop: threading.Event, depth: int = 8) -> None:
        self._handle, self._stop = handle, stop
        self._queue: Queue = Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="adain-video-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except Empty:
                if self._stop.is_set():
                    return
                continue
            if item is _DONE:
                return
            try:
                self._handle(item)
            except BaseException as exc:
                self._error = exc
                return

    def put(self, item: object) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except Full:
                continue
        self._raise()

    def finish(self) -> None:
        self.put(_DONE)
        self._thread.join()
        self._raise()

    def join(self) -> None:
        self._thread.join(timeout=10)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error
        if not self._thread.is_alive() and self._stop.is_set():
            raise AdainError("the video writer stopped")


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
