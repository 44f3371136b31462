"""The temporal mode of ``adain video``: steadier along the motion, reset at scene cuts, every
frame, timestamp and sound kept."""

import fractions

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("cv2")

from adain.cli import main  # noqa: E402
from adain.temporal import FlowBlend, camera_move, warping_error  # noqa: E402
from adain.video import FramePainter  # noqa: E402

from .conftest import MASK, STYLE, STYLE2, needs_shared  # noqa: E402
from .test_video import probe, video_args  # noqa: E402

pytestmark = needs_shared


def pattern(size=(160, 120), seed=0) -> np.ndarray:
    """A textured still: blobs of colour with edges, for the flow to follow."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    return cv2.resize(small, size, interpolation=cv2.INTER_CUBIC)


def quantised(results):
    return [np.clip(r, 0, 255).round().astype(np.uint8) for r in results]


def test_temporal_mode_halves_the_warping_error_of_a_camera_move(stylizer):
    frames, flows, masks = camera_move(pattern(), 8, (96, 64), shift=(1.5, 0.5), zoom=1.01)
    plain = FramePainter(stylizer, [STYLE], style_size=64).per_frame(frames)
    blend = FlowBlend(strength=0.8)
    steady = [blend(f, r) for f, r in zip(frames, plain, strict=True)]
    plain_error = warping_error(quantised(plain), flows, masks)
    steady_error = warping_error(quantised(steady), flows, masks)
    assert steady_error < 0.5 * plain_error
    assert blend.cuts == 0


def test_a_scene_cut_resets_the_blend(stylizer):
    first, _, _ = camera_move(pattern(seed=1), 4, (96, 64))
    second, _, _ = camera_move(pattern(seed=2)[::-1], 3, (96, 64))
    frames = first + second
    plain = FramePainter(stylizer, [STYLE], style_size=64).per_frame(frames)
    blend = FlowBlend(strength=0.8)
    out = [blend(f, r) for f, r in zip(frames, plain, strict=True)]
    assert blend.cuts == 1
    assert np.array_equal(out[4], plain[4])  # the first frame after the cut: nothing of the last scene
    assert not np.array_equal(out[5], plain[5])  # and the new scene is carried on from there
    assert not np.array_equal(out[1], plain[1])


def test_flow_blend_refuses_a_strength_out_of_range():
    from adain.errors import AdainError

    with pytest.raises(AdainError, match="strength"):
        FlowBlend(strength=1.0)


def synth_clip(path, pts, size=(64, 48), audio=True):
    """A clip with the frame times ``pts`` (ms; variable frame rate) and half a second of sound."""
    ms = fractions.Fraction(1, 1000)
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.time_base = video.codec_context.time_base = ms
        sound = out.add_stream("aac", rate=16000) if audio else None
        if sound is not None:
            sound.layout = "mono"
        image = pattern(size)
        for i, t in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(np.roll(image, 2 * i, axis=1)), format="rgb24"
            )
            frame.pts, frame.time_base = t, ms
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            samples = (0.3 * np.sin(np.arange(8000) / 10)).astype(np.float32)[None]
            chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 16000, 0
            out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def test_temporal_mode_keeps_every_frame_its_time_and_the_sound(tmp_path, decoder_file):
    clip = synth_clip(tmp_path / "vfr.mkv", [0, 40, 80, 200, 240, 400, 440])
    out = tmp_path / "steady.mkv"
    assert main(["video", *video_args(decoder_file, clip, "-s", STYLE, "-o", out, "--temporal", "0.7")]) == 0
    before, after = probe(clip), probe(out)
    assert after["frames"] == before["frames"] == 7
    assert after["times"] == before["times"] == [0.0, 0.04, 0.08, 0.2, 0.24, 0.4, 0.44]
    assert audio_packets(out) == audio_packets(clip) and len(audio_packets(clip)) == 9  # copied as they were


def audio_packets(path):
    with av.open(str(path)) as c:
        return [(p.pts, bytes(p)) for p in c.demux(c.streams.audio[0]) if p.size]


@pytest.mark.parametrize(
    "controls",
    [
        ["-s", STYLE, "--alpha", "0.6", "--stable"],
        ["-s", STYLE, STYLE2, "--mask", MASK, "--temporal"],
        ["-s", STYLE, STYLE2, "--style-weights", "1,2", "--preserve-color", "--temporal", "0.5"],
    ],
    ids=["alpha, the old flag name", "mask", "colour, interpolation"],
)
def test_temporal_mode_with_every_control(tmp_path, decoder_file, controls):
    clip = synth_clip(tmp_path / "in.mkv", [0, 40, 80, 120], audio=False)
    out = tmp_path / "out.mkv"
    assert main(["video", *video_args(decoder_file, clip, "-o", out, *controls)]) == 0
    assert probe(out)["frames"] == 4


def test_a_single_frame_video(tmp_path, decoder_file):
    clip = synth_clip(tmp_path / "one.mkv", [0], audio=False)
    out = tmp_path / "one_out.mkv"
    assert main(["video", *video_args(decoder_file, clip, "-s", STYLE, "-o", out, "--temporal")]) == 0
    assert probe(out)["frames"] == 1


def ts_piece(path, size, frames, start):
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            image = np.full((size[1], size[0], 3), 40 * i, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = start + i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path.read_bytes()


def test_frames_that_change_size_mid_stream_are_scaled_to_the_first_size(tmp_path, decoder_file, capsys):
    joined = tmp_path / "joined.ts"  # MPEG-TS pieces join byte for byte; the second is larger
    joined.write_bytes(
        ts_piece(tmp_path / "a.ts", (64, 48), 4, 0) + ts_piece(tmp_path / "b.ts", (80, 64), 4, 6)
    )
    out = tmp_path / "out.mp4"
    assert main(["video", *video_args(decoder_file, joined, "-s", STYLE, "-o", out, "--temporal")]) == 0
    assert probe(out)["frames"] == 8 and probe(out)["size"] == (64, 48)
    assert "4 frames of another size were scaled to 64x48" in capsys.readouterr().err


def test_timestamps_that_go_backwards_are_one_line_error(tmp_path, decoder_file, capsys):
    joined = tmp_path / "joined.ts"  # the second piece starts again from the first one's times
    joined.write_bytes(
        ts_piece(tmp_path / "a.ts", (64, 48), 4, 0) + ts_piece(tmp_path / "b.ts", (64, 48), 4, 0)
    )
    out = tmp_path / "out.mp4"
    assert main(["video", *video_args(decoder_file, joined, "-s", STYLE, "-o", out)]) == 1
    err = capsys.readouterr().err
    assert "timestamps go backwards" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


@pytest.mark.parametrize("renew", [0, 3])
def test_strokes_are_renewed_after_renew_frames(renew):
    """On a still shot the first frame's strokes are carried on; with ``renew`` every cell takes the
    new strokes within that many frames, with 0 never."""
    import cv2

    still = pattern((96, 64))
    rng = np.random.default_rng(0)
    first, later = (rng.uniform(0, 255, (64, 96, 3)).astype(np.float32) for _ in range(2))
    blend = FlowBlend(strength=0.5, renew=renew, cell=16)
    out = [blend(still, first)] + [blend(still, later) for _ in range(renew + 2)]

    def strokes(image):
        return image - cv2.GaussianBlur(image, (0, 0), 6)

    inner = (slice(8, -8), slice(8, -8))  # away from the frame's edge, where the flow check is loose
    residue_of_first = np.abs(strokes(out[-1]) - strokes(first))[inner].mean()
    residue_of_later = np.abs(strokes(out[-1]) - strokes(later))[inner].mean()
    if renew:
        assert residue_of_later < 0.2 * residue_of_first
    else:
        assert residue_of_first < 0.2 * residue_of_later


def test_strokes_are_renewed_sooner_where_the_motion_stretches_them():
    """Under a zoom the carried strokes are stretched: with ``stretch`` they give way to fresh ones
    within a few frames, without it each cell is renewed once in ``renew`` frames."""
    import cv2

    frames, _, _ = camera_move(pattern(), 6, (96, 64), shift=(0.0, 0.0), zoom=1.05)
    rng = np.random.default_rng(0)
    first, later = (rng.uniform(0, 255, (64, 96, 3)).astype(np.float32) for _ in range(2))

    def strokes(image):
        return image - cv2.GaussianBlur(image, (0, 0), 6)

    renewed = {}
    for stretch in (0.0, 2.0):
        blend = FlowBlend(strength=0.5, renew=20, stretch=stretch, cell=16)
        out = [blend(frames[0], first)] + [blend(f, later) for f in frames[1:]]
        inner = (slice(12, -12), slice(12, -12))
        # a pixel takes the fresh strokes in the frame it is renewed in (then those are carried)
        renewed[stretch] = np.mean([(np.abs(strokes(o) - strokes(later))[inner] < 4).mean() for o in out[1:]])
    assert renewed[2.0] > 2 * renewed[0.0]
    with pytest.raises(Exception, match="stretch must be at least 0"):
        FlowBlend(stretch=-1)
