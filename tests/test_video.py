import pytest

av = pytest.importorskip("av")

from adain.cli import main  # noqa: E402
from adain.video import cut  # noqa: E402

from .conftest import SHARED_IMAGES, SHARED_VGG, STYLE, make_image, needs_shared  # noqa: E402

BUNNY = SHARED_IMAGES / "videos" / "cutBunny.mp4"
pytestmark = needs_shared


def probe(path):
    with av.open(str(path)) as c:
        video, audio = c.streams.video[0], c.streams.audio[0] if c.streams.audio else None
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
        rate, size = video.base_rate, (video.codec_context.width, video.codec_context.height)
    audio_seconds = None
    if audio is not None:
        with av.open(str(path)) as c:
            stream = c.streams.audio[0]
            audio_seconds = float(sum(p.duration for p in c.demux(stream) if p.duration) * stream.time_base)
    return {
        "frames": len(times),
        "times": times,
        "fps": float(rate),
        "size": size,
        "audio_seconds": audio_seconds,
    }


def synth_video(path, size=(64, 48), frames=12, fps=12):
    """A small moving-gradient clip without sound."""
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        x = np.linspace(0, 255, size[0])[None, :, None]
        for i in range(frames):
            img = np.broadcast_to((x + 10 * i) % 256, (size[1], size[0], 3)).astype(np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return cut(BUNNY, tmp_path_factory.mktemp("video") / "bunny1s.mp4", seconds=1.0)


def video_args(decoder_file, *extra):
    return [
        *map(str, extra),
        "--decoder",
        str(decoder_file),
        "--vgg",
        str(SHARED_VGG),
        "--style-size",
        "64",
        "-q",
    ]


def test_video_keeps_frames_rate_size_and_sound(clip, tmp_path, decoder_file):
    out = tmp_path / "styled.mp4"
    assert main(["video", *video_args(decoder_file, clip, "-s", STYLE, "-o", out)]) == 0
    before, after = probe(clip), probe(out)
    assert after["frames"] == before["frames"] > 20
    assert after["times"] == before["times"]  # every frame keeps its timestamp
    assert after["fps"] == before["fps"] == 24
    assert after["size"] == before["size"] == (640, 360)
    assert after["audio_seconds"] == pytest.approx(before["audio_seconds"], abs=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["styled.mp4"]  # no temporary file left


def test_stable_mode_and_no_audio(tmp_path, decoder_file):
    clip = synth_video(tmp_path / "small.mkv")
    out = tmp_path / "stable.mkv"
    assert main(["video", *video_args(decoder_file, clip, "-s", STYLE, "-o", out, "--stable", "0.8")]) == 0
    before, after = probe(clip), probe(out)
    assert after["frames"] == before["frames"] == 12 and after["times"] == before["times"]
    assert after["audio_seconds"] is None


@pytest.mark.parametrize("kind", ["text", "truncated", "image", "missing"])
def test_bad_videos_are_one_line_errors(clip, tmp_path, decoder_file, capsys, kind):
    bad = tmp_path / f"bad_{kind}.mp4"
    if kind == "text":
        bad.write_text("not a video")
    elif kind == "truncated":
        bad.write_bytes(clip.read_bytes()[:2000])
    elif kind == "image":
        bad = make_image(tmp_path / "picture.png", (32, 32))
    out = tmp_path / "out.mp4"
    assert main(["video", *video_args(decoder_file, bad, "-s", STYLE, "-o", out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("adain: error:") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "Errno" not in err  # FFmpeg's and the OS's numbers say nothing to a user
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_batched_frames_equal_frame_by_frame(stylizer):
    """A batch is the same computation as its frames one by one, a statistics hook included."""
    import torch

    class Smooth:  # an exponential moving average of the content statistics, called in frame order
        def __init__(self):
            self.state = None

        def __call__(self, stats):
            if self.state is not None:
                stats = [
                    (0.8 * o[0] + 0.2 * n[0], 0.8 * o[1] + 0.2 * n[1])
                    for o, n in zip(self.state, stats, strict=True)
                ]
            self.state = stats
            return stats

    torch.manual_seed(0)
    frames = torch.rand(5, 3, 40, 48)
    code = [stylizer.encode_style(torch.rand(3, 32, 32))]
    one_by_one, in_batches = Smooth(), Smooth()
    single = torch.cat([stylizer.stylize_tensor(f[None], code, 0.9, None, one_by_one) for f in frames])
    batched = torch.cat([stylizer.stylize_tensor(frames[:3], code, 0.9, None, in_batches),
                         stylizer.stylize_tensor(frames[3:], code, 0.9, None, in_batches)])  # fmt: skip
    assert torch.allclose(single, batched, atol=1e-4)


def test_feedback_paints_each_frame_twice_from_its_own_miss(stylizer, tmp_path, decoder_file, capsys):
    """``--feedback``: each frame of a batch is painted twice exactly as it would be alone (its own
    first pass moves its own targets), which is not the plain painting; out of range, one line."""
    import numpy as np

    from adain.video import FramePainter

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(3)]
    twice = stylizer.with_options(feedback=0.5)
    batched = FramePainter(twice, [STYLE], style_size=64).per_frame(frames)
    alone = [FramePainter(twice, [STYLE], style_size=64).per_frame([frame])[0] for frame in frames]
    plain = FramePainter(stylizer, [STYLE], style_size=64).per_frame(frames)
    assert max(np.abs(b - a).max() for b, a in zip(batched, alone, strict=True)) < 0.05
    assert min(np.abs(b - p).mean() for b, p in zip(batched, plain, strict=True)) > 1.0

    clip = synth_video(tmp_path / "in.mkv", frames=3)
    assert main(["video", *video_args(decoder_file, clip, "-s", STYLE, "-o", tmp_path / "twice.mkv",
                                      "--feedback", 0.5)]) == 0  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "video",
                *video_args(decoder_file, clip, "-s", STYLE, "-o", tmp_path / "bad.mkv", "--feedback", 2),
            ]
        )
    assert exit_info.value.code == 2 and "--feedback" in capsys.readouterr().err
    assert not (tmp_path / "bad.mkv").exists()


def test_palette_moves_every_frame_towards_the_styles_colours(stylizer, tmp_path, decoder_file, capsys):
    """``--palette``: each frame recoloured towards the style image's RGB mean and covariance (with
    a mask, each region towards its style's); with colour preservation, refused before any output."""
    import numpy as np
    import torch

    from adain import images
    from adain.colour import palette_of
    from adain.errors import AdainError
    from adain.video import FramePainter

    style = images.to_tensor(images.load_image(STYLE))
    target = palette_of(style)

    def distance(frame: np.ndarray) -> float:
        mean, cov = palette_of(torch.from_numpy(frame / 255).permute(2, 0, 1)[None].float())
        return (torch.linalg.norm(mean - target[0]) + torch.linalg.norm(cov - target[1])).item()

    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(2)]
    painter = stylizer.with_options(palette=1)
    moved = FramePainter(painter, [STYLE], style_size=64)(frames)
    plain = FramePainter(stylizer, [STYLE], style_size=64)(frames)
    for m, p in zip(moved, plain, strict=True):
        assert distance(m) < 0.5 * distance(p)
    with pytest.raises(AdainError, match="choose one"):
        FramePainter(painter, [STYLE], preserve_color=True, style_size=64)

    clip = synth_video(tmp_path / "in.mkv", frames=3)
    made = tmp_path / "moved.mkv"
    assert main(["video", *video_args(decoder_file, clip, "-s", STYLE, "-o", made, "--palette", 0.5)]) == 0
    assert probe(made)["frames"] == 3
    mask = make_image(tmp_path / "mask.png", (64, 48), seed=2)
    masked = video_args(decoder_file, clip, "-o", tmp_path / "masked.mkv", "--palette", 0.5, "--mask", mask,
                        "-s", STYLE, STYLE)  # fmt: skip
    assert main(["video", *masked]) == 0  # each region towards its style's
    argv = video_args(decoder_file, clip, "-o", tmp_path / "bad.mkv", "--palette", 0.5, "--preserve-color",
                      "-s", STYLE)  # fmt: skip
    assert main(["video", *argv]) == 2
    assert "--palette does not go with --preserve-color" in capsys.readouterr().err
    assert not (tmp_path / "bad.mkv").exists()


def test_odd_frame_size_and_existing_output(tmp_path, decoder_file, capsys):
    odd = synth_video(tmp_path / "odd.mkv", size=(33, 32), frames=2)
    assert main(["video", *video_args(decoder_file, odd, "-s", STYLE, "-o", tmp_path / "o.mp4")]) == 1
    assert "odd side" in capsys.readouterr().err
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"keep me")
    assert main(["video", *video_args(decoder_file, odd, "-s", STYLE, "-o", existing)]) == 1
    assert "exists" in capsys.readouterr().err and existing.read_bytes() == b"keep me"


@pytest.mark.parametrize(
    "name, extra, message",
    [
        ("out.txt", [], "unknown video format '.txt' (use .mp4, .m4v, .mov, .mkv)"),
        ("out.webm", [], "unknown video format '.webm'"),
        ("out.mp4", ["--codec", "libvpx"], "'mp4' format does not support 'libvpx' codec"),
    ],
)
def test_output_format_and_codec_mismatches(tmp_path, decoder_file, capsys, name, extra, message):
    clip = synth_video(tmp_path / "in.mkv", frames=2)
    out = tmp_path / name
    assert main(["video", *video_args(decoder_file, clip, "-s", STYLE, "-o", out, *extra)]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv"]  # no output, no temporary file


def test_batch_flag_stylizes_frames_together_with_the_same_result(tmp_path, decoder_file):
    import numpy as np

    clip = synth_video(tmp_path / "in.mkv", frames=7)
    outs = {}
    for batch in (1, 3):
        out = tmp_path / f"batch{batch}.mkv"
        assert main(["video", *video_args(decoder_file, clip, "-s", STYLE, "-o", out, "--batch", batch)]) == 0
        with av.open(str(out)) as c:
            outs[batch] = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(float)
    assert outs[1].shape == outs[3].shape == (7, 48, 64, 3)
    assert np.abs(outs[1] - outs[3]).mean() < 0.5  # the same frames, up to float rounding and the codec


def test_a_truncated_video_is_an_error_not_a_shorter_video(tmp_path, decoder_file, capsys):
    clip = synth_video(tmp_path / "full.mkv", frames=48)
    cut_short = tmp_path / "cut.mkv"
    data = clip.read_bytes()
    cut_short.write_bytes(data[: int(len(data) * 0.55)])
    out = tmp_path / "out.mkv"
    assert main(["video", *video_args(decoder_file, cut_short, "-s", STYLE, "-o", out)]) == 1
    err = capsys.readouterr().err
    assert (
        "could be decoded" in err
        and "(the file is truncated or corrupt)" in err
        and len(err.strip().splitlines()) == 1
    )
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["cut.mkv", "full.mkv"]


def test_sigterm_during_a_video_leaves_no_temporary_file(tmp_path, decoder_file):
    import signal
    import subprocess
    import sys
    import time

    clip = synth_video(tmp_path / "long.mkv", size=(256, 192), frames=200)
    out = tmp_path / "out.mkv"
    args = video_args(decoder_file, clip, "-s", STYLE, "-o", out)
    process = subprocess.Popen(
        [sys.executable, "-m", "adain", "video", *args], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]:
        time.sleep(0.1)  # until it is writing
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "interrupted" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mkv"]


def test_decoder_match_paints_every_frame(stylizer, tmp_path, decoder_file):
    """``--decoder-match``: the frames differ from the plain ones, with and without a mask and with
    colour preservation (the style recoloured, then measured, per frame)."""
    import numpy as np

    from adain.video import FramePainter

    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(2)]
    matched = FramePainter(stylizer.with_options(decoder_match=1.0), [STYLE], style_size=64)(frames)
    plain = FramePainter(stylizer, [STYLE], style_size=64)(frames)
    assert all(not np.array_equal(m, p) for m, p in zip(matched, plain, strict=True))
    kept = FramePainter(stylizer.with_options(decoder_match=1.0), [STYLE], preserve_color=True, style_size=64)
    assert len(kept(frames)) == 2
    clip = synth_video(tmp_path / "in.mkv", frames=3)
    mask = make_image(tmp_path / "mask.png", (64, 48), seed=2)
    for extra in (["-s", STYLE], ["--mask", mask, "-s", STYLE, STYLE]):
        made = tmp_path / f"matched{len(extra)}.mkv"
        argv = video_args(decoder_file, clip, "-o", made, "--decoder-match", 0.75, *extra)
        assert main(["video", *argv]) == 0 and probe(made)["frames"] == 3
