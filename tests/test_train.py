import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from adain.cli import main
from adain.losses import AdaINLoss, content_loss, style_loss
from adain.nets import Decoder, Encoder, adain, mean_std
from adain.stylize import Stylizer
from adain.train import TrainConfig, Trainer, learning_rate
from adain.weights import DecoderWeights

from .conftest import SHARED_VGG, exit_status, make_image


@pytest.fixture
def dataset(tmp_path):
    content, style = tmp_path / "content", tmp_path / "style" / "nested"
    content.mkdir()
    style.mkdir(parents=True)
    for i in range(4):
        make_image(content / f"c{i}.jpg", (48, 40), seed=i)
        make_image(style / f"s{i}.png", (40, 52), seed=10 + i)
    return content, tmp_path / "style"


def train_args(dataset, out, *extra):
    content, style = dataset
    args = ["train", "--content-dir", content, "--style-dir", style, "--out-dir", out, "--load-size", 40,
            "--crop-size", 32, "--batch-size", 2, "--workers", 0, "--log-every", 1, "-q"]  # fmt: skip
    if SHARED_VGG.is_file():
        args += ["--vgg", SHARED_VGG]
    return [str(a) for a in [*args, *extra]]


def read_log(out):
    with open(out / "log.csv") as f:
        return list(csv.DictReader(f))


def cached_style_means(dataset, run, cache, *flags, iterations=1):
    """Train ``iterations`` steps with a feature cache in ``cache`` (empty or holding this recipe's
    file only): the style means it cached, (N, K, 960)."""
    from safetensors.torch import load_file

    assert main(train_args(dataset, run, "--max-iter", iterations, "--feature-cache", cache, *flags)) == 0
    return load_file(next(Path(cache).glob("style-*")))["mean"]


def test_style_and_content_loss_by_hand():
    out = [torch.tensor([1.0, 3.0]).view(1, 1, 1, 2)]
    ref = [torch.tensor([2.0, 2.0, 2.0, 6.0]).view(1, 1, 2, 2)]
    # means 2 vs 3; unbiased stds sqrt(2) vs 2 (eps aside)
    expected = (2 - 3) ** 2 + ((2 + 1e-5) ** 0.5 - (4 + 1e-5) ** 0.5) ** 2
    assert style_loss(out, ref).item() == pytest.approx(expected, rel=1e-5)
    assert content_loss(torch.ones(1, 2, 2, 2), torch.zeros(1, 2, 2, 2)).item() == 1.0


def test_learning_rate_warms_up_then_decays():
    config = TrainConfig("c", "s", "o", lr=1e-4, lr_decay=5e-5, warmup=100)
    assert learning_rate(config, 0) == pytest.approx(1e-6)
    assert learning_rate(config, 49) == pytest.approx(0.5e-4 / (1 + 5e-5 * 49))
    assert learning_rate(config, 99) == pytest.approx(1e-4 / (1 + 5e-5 * 99))
    assert learning_rate(config, 5000) == pytest.approx(1e-4 / 1.25)
    no_warmup = TrainConfig("c", "s", "o", lr=1e-4, lr_decay=5e-5)
    assert learning_rate(no_warmup, 0) == 1e-4


def test_warmup_is_logged_in_the_learning_rate_column(dataset, tmp_path, capsys):
    assert (
        main(train_args(dataset, tmp_path / "run", "--max-iter", "4", "--warmup", "4", "--lr", "4e-4")) == 0
    )
    assert [float(row["lr"]) for row in read_log(tmp_path / "run")] == pytest.approx(
        [2e-4 / (1 + 5e-5), 3e-4 / (1 + 1e-4), 4e-4 / (1 + 1.5e-4), 4e-4 / (1 + 2e-4)], rel=1e-3
    )


# Not Winograd with a norm layer: a random decoder with norm layers at these sizes is so ill-conditioned
# that float32 itself is far from float64 in some gradients, whichever convolution runs.
@pytest.mark.parametrize(("winograd", "norm"), [(False, "none"), (True, "none"), (False, "batch")])
def test_training_losses_and_gradients_equal_the_plain_networks(winograd, norm):
    # AdaINLoss runs the decoder with fused upsampling (and Winograd convs); the paper's loss through
    # the plain layers must give the same numbers and the same decoder gradients
    torch.manual_seed(3)
    encoder, decoder = Encoder(), Decoder(norm)
    content, style = torch.rand(2, 3, 40, 36), torch.rand(2, 3, 32, 44)
    loss_c, loss_s, _ = AdaINLoss(encoder, decoder, winograd=winograd)(content, style)
    (loss_c + 10 * loss_s).backward()
    fast = [p.grad.clone() for p in decoder.parameters()]
    decoder.zero_grad()

    t = adain(encoder(content), encoder.taps(style)[-1])
    out_taps = encoder.taps(decoder(t))
    ref_c, ref_s = content_loss(out_taps[-1], t), style_loss(out_taps, encoder.taps(style))
    (ref_c + 10 * ref_s).backward()
    torch.testing.assert_close(loss_c, ref_c, rtol=1e-4, atol=0)
    torch.testing.assert_close(loss_s, ref_s, rtol=1e-4, atol=0)
    plain = [p.grad for p in decoder.parameters()]
    scale = max(g.abs().max().item() for g in plain)  # biases before a norm layer get ~0
    for got, want in zip(fast, plain, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=3e-4 * scale)


def test_tiny_run_exports_a_decoder_that_stylize_loads(dataset, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(dataset, out, "--max-iter", 3)) == 0
    assert "4 content and 4 style images; batch 2 of 32 px crops; iteration 0 of 3" in capsys.readouterr().err
    rows = read_log(out)
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3]
    assert all(float(r["loss"]) > 0 for r in rows)
    assert float(rows[1]["lr"]) == pytest.approx(1e-4 / (1 + 5e-5 * 2))
    for name in ("decoder.safetensors", "decoder.pth", "checkpoint.pt", "config.json"):
        assert (out / name).is_file()
    content = next(dataset[0].iterdir())
    stylized = tmp_path / "stylized.png"
    code = main(
        [
            "stylize",
            str(content),
            "-s",
            str(content),
            "-o",
            str(stylized),
            "--decoder",
            str(out / "decoder.pth"),
            "-q",
        ]
    )
    assert code == 0 and stylized.is_file()


def test_init_decoder_starts_from_given_weights(dataset, tmp_path, capsys):
    first = tmp_path / "first"
    assert main(train_args(dataset, first, "--max-iter", 2)) == 0
    second = tmp_path / "second"
    args = train_args(dataset, second, "--max-iter", 1, "--init-decoder", first / "decoder.pth", "--lr", "0")
    assert main(args) == 0
    a = torch.load(first / "decoder.pth", weights_only=True)
    b = torch.load(second / "decoder.pth", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)  # lr 0: the weights are exactly the ones given


def test_tensorboard_scalars_and_preview_images(dataset, tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert main(train_args(dataset, out, "--max-iter", 4, "--image-every", 2)) == 0
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert {"loss/total", "loss/content", "loss/style", "lr"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("loss/total")] == [1, 2, 3, 4]
    previews = events.Images("preview")
    assert [p.step for p in previews] == [2, 4]
    assert (previews[0].width, previews[0].height) == (3 * 32, 3 * 32)  # 2 styles + 2 contents + results
    from PIL import Image

    assert sorted(p.name for p in (out / "previews").iterdir()) == ["0000002.jpg", "0000004.jpg"]
    assert Image.open(out / "previews" / "0000004.jpg").size == (3 * 32, 3 * 32)


def test_existing_run_needs_resume(dataset, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(dataset, out, "--max-iter", 1)) == 0
    assert main(train_args(dataset, out, "--max-iter", 2)) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(train_args(dataset, out, "--max-iter", 2, "--resume")) == 0
    assert [int(r["iteration"]) for r in read_log(out)] == [1, 2]
    with pytest.warns(UserWarning, match=r"recipe changed: --batch-size 2 -> 1, --lr 0.0001 -> 5e-05$"):
        assert (
            main(train_args(dataset, out, "--max-iter", 3, "--resume", "--batch-size", 1, "--lr", 5e-5)) == 0
        )


def test_resume_after_sigkill_reaches_the_final_iteration(dataset, tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "adain", *train_args(dataset, out, "--max-iter", 400, "--save-every", 3)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # killed past a checkpoint, between two
        rows = read_log(out) if (out / "checkpoint.pt").exists() else []
        if rows and int(rows[-1]["iteration"]) % 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = torch.load(out / "checkpoint.pt", weights_only=False)["iteration"]
    assert 3 <= saved < 400 and saved % 3 == 0
    assert main(train_args(dataset, out, "--max-iter", saved + 4, "--save-every", 3, "--resume")) == 0
    final = torch.load(out / "checkpoint.pt", weights_only=False)
    assert final["iteration"] == saved + 4
    assert not list(out.glob("*.part"))
    # the iterations logged after the checkpoint by the killed run are not in the log twice
    iterations = [int(row["iteration"]) for row in read_log(out)]
    assert iterations == list(range(1, saved + 5))


def read_sittings(out):
    with open(out / "sittings.csv") as f:
        return list(csv.DictReader(f))


def test_time_limited_chunks_continue_one_run(dataset, tmp_path, capsys):
    """A run cut into chunks by --time-limit (as on a GPU lent for minutes at a time): each chunk
    stops in time with a checkpoint, the next resumes it, and the chunks add up to one run."""
    out = tmp_path / "run"
    content, style = dataset
    config = TrainConfig(str(content), str(style), str(out), load_size=40, crop_size=32, batch_size=2,
                         max_iter=10**6, workers=0, log_every=1, tensorboard=False,
                         vgg=str(SHARED_VGG) if SHARED_VGG.is_file() else None)  # fmt: skip
    first = Trainer(config, progress=False)
    begun = time.monotonic()
    assert first.run(time_limit=1.5) is None
    assert time.monotonic() - begun < 1.5 + 1.0  # the last step ends in time; then one checkpoint
    stopped = first.iteration
    assert 0 < stopped == torch.load(out / "checkpoint.pt", weights_only=False)["iteration"]
    # the CLI: a chunk that ends at its limit exits 0 and says how to go on; the last one finishes
    args = train_args(dataset, out, "--max-iter", stopped + 3, "--resume", "--no-tensorboard")
    assert main([*args, "--time-limit", "0.0001"]) == 0
    assert f"time limit reached at iteration {stopped} of {stopped + 3}" in capsys.readouterr().err
    assert main(args) == 0
    assert (out / "decoder.safetensors").is_file()
    assert [int(r["iteration"]) for r in read_log(out)] == list(range(1, stopped + 4))
    sittings = read_sittings(out)
    assert [(int(r["from_iteration"]), int(r["to_iteration"]), r["ended"]) for r in sittings] == [
        (0, stopped, "time limit"),
        (stopped, stopped, "time limit"),
        (stopped, stopped + 3, "finished"),
    ]
    assert "--resume" in sittings[-1]["command"] and sittings[-1]["device"].startswith("CPU")
    assert float(sittings[0]["seconds"]) < 2.5


def test_fp16_training_scales_its_loss(dataset, tmp_path):
    """fp16 gradients underflow unscaled: the run keeps a loss scale and carries it across a resume."""
    out = tmp_path / "run"
    assert main(train_args(dataset, out, "--max-iter", 2, "--precision", "fp16")) == 0
    scaler = torch.load(out / "checkpoint.pt", weights_only=False)["scaler"]
    # the default first scale, 2**16, overflows these gradients: the scaler has backed off from it
    assert 1.0 < scaler["scale"] < 2.0**15
    assert main(train_args(dataset, out, "--max-iter", 3, "--precision", "fp16", "--resume")) == 0
    resumed = torch.load(out / "checkpoint.pt", weights_only=False)["scaler"]
    kept = (scaler["scale"], scaler["_growth_tracker"] + 1)  # one more good step
    backed_off = (scaler["scale"] / 2, 0)  # one more overflow
    assert (resumed["scale"], resumed["_growth_tracker"]) in (kept, backed_off)
    assert all(float(r["loss"]) > 0 for r in read_log(out))


def start_long_run(dataset, out, workers: int = 0) -> subprocess.Popen:
    """`adain train` in its own process group, returned once it has logged two iterations."""
    args = train_args(dataset, out, "--max-iter", 100000, "--save-every", 100000)
    args[args.index("--workers") + 1] = str(workers)
    proc = subprocess.Popen([sys.executable, "-m", "adain", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / "log.csv").exists() and len(read_log(out)) >= 2):
        time.sleep(0.05)
    return proc


def test_sigterm_saves_a_checkpoint(dataset, tmp_path):
    out = tmp_path / "run"
    proc = start_long_run(dataset, out)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume continues" in err and "Traceback" not in err
    assert torch.load(out / "checkpoint.pt", weights_only=False)["iteration"] >= 2


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_to_the_process_group_with_data_workers(dataset, tmp_path, signum):
    """A terminal's Ctrl-C, or `pkill`/a container stop, reaches the data workers too; the run
    still ends cleanly with a checkpoint."""
    out = tmp_path / "run"
    proc = start_long_run(dataset, out, workers=1)
    os.killpg(proc.pid, signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume continues" in err and "Traceback" not in err, err[-1500:]
    assert torch.load(out / "checkpoint.pt", weights_only=False)["iteration"] >= 2


@pytest.mark.parametrize(
    "flags", [["--content-target", "fc"], ["--decoder-norm", "batch"], ["--decoder-norm", "instance"]]
)
def test_ablation_flags(dataset, tmp_path, flags, capsys):
    out = tmp_path / "run"
    assert main(train_args(dataset, out, "--max-iter", 2, *flags)) == 0
    if flags[0] == "--decoder-norm":
        vgg = SHARED_VGG if SHARED_VGG.is_file() else None
        stylizer = Stylizer.from_pretrained(vgg, out / "decoder.safetensors", "cpu")
        assert stylizer.decoder.norm == flags[1]
        assert len(stylizer.decoder) == len(Decoder()) + 8  # a norm layer after each hidden conv


def test_empty_and_small_datasets(tmp_path, dataset, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    content, style = dataset
    args = train_args((empty, style), tmp_path / "run", "--max-iter", 1)
    assert main(args) == 1
    assert "no images found" in capsys.readouterr().err
    assert main(train_args(dataset, tmp_path / "run", "--batch-size", 8)) == 1
    assert "fewer than --batch-size 8" in capsys.readouterr().err
    assert main(train_args(dataset, tmp_path / "run", "--crop-size", 64)) == 1
    assert "larger than --load-size" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--lr", "-1"], "--lr: must be 0 or more"),
        (["--lr", "nan"], "--lr: expected a finite number"),
        (["--style-weight", "inf"], "--style-weight: expected a finite number"),
        (["--lr-decay", "-0.1"], "--lr-decay: must be 0 or more"),
        (["--time-limit", "0"], "--time-limit: must be more than 0"),
    ],
)
def test_bad_training_flags(dataset, tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_:
        main(train_args(dataset, tmp_path / "run", *flags))
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_output_folder_that_cannot_be_made(dataset, tmp_path, capsys):
    taken = tmp_path / "a-file"
    taken.write_text("mine")
    assert main(train_args(dataset, taken, "--max-iter", 1)) == 1
    assert capsys.readouterr().err == f"adain: error: {taken}: exists and is not a directory (--out-dir)\n"
    assert main(train_args(dataset, taken / "run", "--max-iter", 1)) == 1
    assert capsys.readouterr().err == f"adain: error: {taken / 'run'}: Not a directory\n"
    assert taken.read_text() == "mine"


@pytest.mark.parametrize("workers", [0, 1])
def test_unreadable_training_images_are_skipped(dataset, tmp_path, workers):
    (dataset[0] / "broken.jpg").write_bytes(b"\xff\xd8\xffnot really")
    out = tmp_path / "run"
    args = train_args(dataset, out, "--max-iter", 8, "--seed", 3)
    args[args.index("--workers") + 1] = str(workers)
    # a process of its own, as users run it: pytest would catch the warnings in this one
    result = subprocess.run(
        [sys.executable, "-m", "adain", *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(read_log(out)[-1]["iteration"]) == 8
    err = result.stderr
    # one line, once, from the data worker's process too; and counted where the trainer sees it
    assert err.count("adain: warning: skipping unreadable training image: ") == 1
    assert "broken.jpg" in err and "UserWarning" not in err
    assert "skipped 1 unreadable training image" in err
    from adain.weights import read_metadata

    assert read_metadata(out / "decoder.safetensors")["skipped_images"] == "1"


def test_a_folder_of_unreadable_images_ends_the_run_with_one_line(dataset, tmp_path):
    """The error comes from a data worker; the run still exits at once (no worker left to block the
    interpreter's exit) with our message, not the worker's traceback."""
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"{i}.jpg").write_bytes(b"not a jpeg")
    args = train_args((bad, dataset[1]), tmp_path / "run", "--max-iter", 3)
    args[args.index("--workers") + 1] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "adain", *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == f"adain: error: {bad}: too many unreadable images in a row"
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(os.cpu_count() is None, reason="needs a cpu count")
def test_two_workers_data_loading(dataset, tmp_path):
    out = tmp_path / "run"
    args = train_args(dataset, out, "--max-iter", 2)
    args[args.index("--workers") + 1] = "2"
    assert main(args) == 0


def test_two_process_gloo_training(dataset, tmp_path):
    """torchrun with 2 CPU processes: each rank its data shard, rank 0 alone writes the run."""
    out = tmp_path / "ddp"
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
    ]
    args = train_args(dataset, out, "--max-iter", 3, "--batch-size", 1, "--save-every", 2)
    result = subprocess.run([*torchrun, "-m", "adain", *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [int(r["iteration"]) for r in read_log(out)] == [1, 2, 3]  # one log, not one per rank
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["iteration"] == 3
    from adain.weights import read_metadata

    assert read_metadata(out / "decoder.safetensors")["batch_size"] == "2"  # 1 per rank x 2 ranks


def test_ablate_trains_and_evaluates_every_variant(dataset, tmp_path, capsys):
    import json

    out = tmp_path / "ablation"
    content, style = dataset
    eval_c, eval_s = tmp_path / "eval_c", tmp_path / "eval_s"
    for folder, seed in ((eval_c, 30), (eval_s, 40)):
        folder.mkdir()
        for i in range(2):
            make_image(folder / f"e{i}.png", (32, 32), seed=seed + i)
    argv = ["ablate", "--content-dir", content, "--style-dir", style, "--eval-content-dir", eval_c,
            "--eval-style-dir", eval_s, "--out-dir", out, "--max-iter", 2, "--load-size", 40,
            "--crop-size", 32, "--batch-size", 2, "--size", 32, "--workers", 0, "-q"]  # fmt: skip
    if SHARED_VGG.is_file():
        argv += ["--vgg", SHARED_VGG]
    assert main([str(a) for a in argv]) == 0
    table = json.loads((out / "ablation.json").read_text())
    assert list(table) == ["adain", "content-target-fc", "decoder-batchnorm", "decoder-instancenorm"]
    assert all(
        row["iterations"] == 2 and row["content_loss"] > 0 and row["style_loss"] > 0 for row in table.values()
    )
    assert table["content-target-fc"]["content_target"] == "fc"
    assert all(row["train_style_loss"] > 0 and row["train_from_iteration"] == 2 for row in table.values())
    assert "| decoder-instancenorm | t | instance | 2 |" in (out / "ablation.md").read_text()
    from PIL import Image

    assert Image.open(out / "ablation_grid.jpg").size == ((2 + 4) * 32, 4 * 32)  # 2x2 pairs, 6 columns
    assert Image.open(out / "ablation_curves.png").format == "PNG"  # the paper's Fig. 5
    assert "decoder-batchnorm" in capsys.readouterr().out


def test_feature_cache_trains_and_is_reused_and_rebuilt(dataset, tmp_path, capsys):
    cache = tmp_path / "cache"
    args = train_args(dataset, tmp_path / "run", "--max-iter", "3", "--feature-cache", cache)
    assert main(args) == 0
    made = sorted(p.name for p in cache.iterdir())
    assert [name.split("-")[0] for name in made] == ["content", "style"]
    stamps = {p: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert len(read_log(tmp_path / "run")) == 3
    assert main(train_args(dataset, tmp_path / "again", "--max-iter", "2", "--feature-cache", cache)) == 0
    assert {p: p.stat().st_mtime_ns for p in cache.iterdir()} == stamps  # used as it was
    # a damaged file is rebuilt, with a warning
    content_file = next(cache.glob("content-*"))
    content_file.write_bytes(content_file.read_bytes()[:100])
    with pytest.warns(UserWarning, match="damaged feature cache, rebuilding it"):
        assert main(train_args(dataset, tmp_path / "third", "--max-iter", "1", "--feature-cache", cache)) == 0
    assert content_file.stat().st_size > 1000
    # other images: another key, another file
    make_image(dataset[0] / "c9.jpg", (48, 40), seed=99)
    assert main(train_args(dataset, tmp_path / "fourth", "--max-iter", "1", "--feature-cache", cache)) == 0
    assert len(list(cache.glob("content-*"))) == 2 and len(list(cache.glob("style-*"))) == 1


def test_cached_losses_equal_the_image_path_on_whole_images():
    """With crops as large as the images, the cached path computes the same losses as the image path
    (style statistics of the whole image are those of the crop)."""
    from adain import features

    torch.manual_seed(0)
    encoder, decoder = Encoder().eval(), Decoder()
    model = AdaINLoss(encoder, decoder)
    content, style = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    direct = model(content, style)
    with torch.no_grad():
        stats = [mean_std(t) for t in encoder.taps(style)]
        packed = torch.stack(
            [torch.cat([m.flatten(1) for m, _ in stats], 1), torch.cat([s.flatten(1) for _, s in stats], 1)],
            1,
        )
        content_feat = encoder(content)
    cached = model(content_feat, packed, cached=True)
    assert features.style_stats_of(packed)[2][1].shape == (2, 256, 1, 1)
    for a, b in zip(direct, cached, strict=True):
        assert a.item() == pytest.approx(b.item(), rel=1e-5)


def test_a_feature_cache_that_cannot_be_written_only_warns(dataset, tmp_path, monkeypatch):
    import contextlib
    import errno

    from adain import files

    cache = tmp_path / "cache"
    real = files.replacing

    @contextlib.contextmanager
    def full_disk_in_the_cache(path, overwrite=True):
        if cache in Path(path).parents:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        with real(path, overwrite) as tmp:
            yield tmp

    monkeypatch.setattr(files, "replacing", full_disk_in_the_cache)
    with pytest.warns(UserWarning, match="cannot write the feature cache .*No space left on device"):
        assert main(train_args(dataset, tmp_path / "run", "--max-iter", "2", "--feature-cache", cache)) == 0
    assert len(read_log(tmp_path / "run")) == 2 and not list(cache.glob("*"))


def test_caching_hands_the_heap_back_after_each_image(tmp_path, monkeypatch):
    # a trainer keeps freed memory for its steps; the caching's images of many sizes left holes that
    # grew two runs to 13-20 GB side by side until one was killed (session 35)
    from adain import features

    paths = [make_image(tmp_path / f"{i}.png", (40 + 8 * i, 32), seed=i) for i in range(3)]
    (tmp_path / "broken.png").write_bytes(b"not an image")
    trims = []
    monkeypatch.setattr(features, "release_freed_memory", lambda: trims.append(1))
    with pytest.warns(UserWarning, match="skipping unreadable"):
        built = features.encode_contents(
            [*paths, tmp_path / "broken.png"], 32, lambda x: x.mean(1, keepdim=True)
        )
    assert (len(built.features), built.skipped, len(trims)) == (3, 1, 3)


def test_style_crop_statistics_are_the_crops_in_feature_space():
    from adain import features

    torch.manual_seed(0)
    style_taps = [
        torch.rand(1, c, 48 // s, 64 // s) for c, s in zip((64, 128, 256, 512), (1, 2, 4, 8), strict=True)
    ]
    corners = features.crop_corners(48, 64, 16, 6, seed=3)
    assert (
        corners
        == features.crop_corners(48, 64, 16, 6, seed=3)
        != features.crop_corners(48, 64, 16, 6, seed=4)
    )
    assert all(top % 8 == 0 and left % 8 == 0 and top + 16 <= 48 and left + 16 <= 64 for top, left in corners)
    mean, std = features.tap_statistics(style_taps, corners, 16)
    assert mean.shape == std.shape == (6, 960)
    top, left = corners[5]
    deepest = style_taps[3][..., top // 8 : top // 8 + 2, left // 8 : left // 8 + 2]
    ref_mean, ref_std = mean_std(deepest)
    torch.testing.assert_close(mean[5, 448:], ref_mean.flatten())
    torch.testing.assert_close(std[5, 448:], ref_std.flatten())
    whole_mean, _ = features.tap_statistics(style_taps, None, 0)
    torch.testing.assert_close(whole_mean[0, :64], mean_std(style_taps[0])[0].flatten())


def test_cached_batches_draw_one_crop_of_each_style():
    from adain import features

    contents = features.ContentFeatures([torch.rand(512, 4, 4) for _ in range(4)])
    # style i, crop k: every statistic is 10 i + k, so a row says which it came from
    mean = torch.arange(4)[:, None, None] * 10.0 + torch.arange(3)[None, :, None] + torch.zeros(4, 3, 960)
    batches = features.CachedBatches(contents, features.StyleStats(mean, mean + 0.5), 2, 16, seed=0)
    seen = set()
    for _ in range(20):
        _, style = next(batches)
        assert style.shape == (2, 2, 960) and torch.equal(style[:, 1], style[:, 0] + 0.5)
        seen.update(int(v) for v in style[:, 0, 0])
    assert {v // 10 for v in seen} == {0, 1, 2, 3} and {v % 10 for v in seen} == {0, 1, 2}


def test_mixed_styles_blend_two_styles_and_leave_unmixed_draws_alone():
    from adain import features

    contents = features.ContentFeatures([torch.rand(512, 4, 4) for _ in range(4)])
    mean = torch.arange(4)[:, None, None] * 10.0 + torch.zeros(4, 3, 960)  # style i: every statistic 10 i
    stats = features.StyleStats(mean, mean + 0.5)
    plain = features.CachedBatches(contents, stats, 2, 16, seed=0)
    unmixed = features.CachedBatches(contents, stats, 2, 16, seed=0, mix=0.0)
    for _ in range(5):
        assert torch.equal(next(plain)[1], next(unmixed)[1])
    mixed = features.CachedBatches(contents, stats, 2, 16, seed=0, mix=1.0)
    values = torch.cat([next(mixed)[1] for _ in range(50)])
    # each target one weighted average of two styles, the same at every statistic, std still mean + 0.5
    assert torch.equal(values[:, 0], values[:, 0, :1].expand(-1, 960))
    torch.testing.assert_close(values[:, 1], values[:, 0] + 0.5)
    between = values[:, 0, 0]
    assert between.min() >= 0 and between.max() <= 30
    assert (between % 10 != 0).float().mean() > 0.5  # blends, not the paintings themselves
    half = features.CachedBatches(contents, stats, 2, 16, seed=0, mix=0.5)
    share = (torch.cat([next(half)[1][:, 0, 0] for _ in range(200)]) % 10 != 0).float().mean()
    assert 0.3 < share < 0.7
    beyond = features.CachedBatches(contents, stats, 2, 16, seed=0, mix=1.0, reach=0.5)
    reached = torch.cat([next(beyond)[1] for _ in range(100)])
    assert reached[:, 0, 0].max() > 30 and reached.min() == 0  # past the paintings, never below zero
    torch.testing.assert_close(reached[:, 1].clamp_min(0.5), reached[:, 0].clamp_min(0) + 0.5)


def test_mix_styles_needs_the_cache_and_a_probability(dataset, tmp_path, capsys):
    assert exit_status(train_args(dataset, tmp_path / "a", "--max-iter", "1", "--mix-styles", "0.5")) != 0
    err = capsys.readouterr().err
    assert "--mix-styles needs --feature-cache" in err and "Traceback" not in err
    assert exit_status(train_args(dataset, tmp_path / "b", "--max-iter", "1", "--mix-styles", "2")) != 0
    assert "must be between 0 and 1" in capsys.readouterr().err
    assert exit_status(train_args(dataset, tmp_path / "b", "--max-iter", "1", "--mix-reach", "0.5")) != 0
    assert "--mix-reach widens the blends of --mix-styles, which is 0" in capsys.readouterr().err
    mixing = ["--feature-cache", tmp_path / "cache", "--mix-styles", "0.5", "--mix-reach", "0.25"]
    assert main(train_args(dataset, tmp_path / "c", "--max-iter", "2", *mixing)) == 0
    assert "50% of them blended with another (weights from -0.25 to 1.25)" in capsys.readouterr().err
    assert (tmp_path / "c" / "decoder.safetensors").is_file()
    # a run from before the flag, resumed with it, is told
    from adain.train import load_checkpoint_file

    checkpoint = load_checkpoint_file(tmp_path / "c" / "checkpoint.pt")
    del checkpoint["config"]["style_mix"]
    torch.save(checkpoint, tmp_path / "c" / "checkpoint.pt")
    with pytest.warns(UserWarning, match=r"recipe changed: --mix-styles 0.0 -> 0.5$"):
        assert main(train_args(dataset, tmp_path / "c", *mixing, "--max-iter", "3", "--resume")) == 0


def test_style_gain_scales_each_channels_mean_and_std_by_one_random_factor():
    from adain import features

    contents = features.ContentFeatures([torch.rand(512, 4, 4) for _ in range(4)])
    mean = torch.arange(1, 5)[:, None, None] * 10.0 + torch.zeros(4, 3, 960)
    stats = features.StyleStats(mean, 2 * mean)
    plain = features.CachedBatches(contents, stats, 2, 16, seed=0, gain=0.0)
    gained = features.CachedBatches(contents, stats, 2, 16, seed=0, gain=0.2)
    # the same styles drawn (the gain is drawn after them), each channel scaled by its own factor
    factor = next(gained)[1] / next(plain)[1]
    torch.testing.assert_close(factor[:, 0], factor[:, 1])  # the mean and std of a channel alike
    spread = factor[:, 0].log().std()
    assert 0.17 < spread < 0.23, spread
    assert factor[0, 0].unique().numel() > 900  # per channel, not per style
    assert not torch.equal(factor[0], factor[1])  # per target


def test_bold_styles_draw_the_styles_by_their_energy():
    from adain import features

    contents = features.ContentFeatures([torch.rand(512, 4, 4) for _ in range(4)])
    # style i: every relu2_1 mean i + 1 (energy (i + 1)^2), and the first statistic names the style
    mean = torch.ones(4, 3, 960) * torch.arange(1.0, 5.0)[:, None, None]
    mean[..., 0] = torch.arange(4.0)[:, None]
    stats = features.StyleStats(mean, mean)
    torch.testing.assert_close(features.style_energy(stats), torch.arange(1.0, 5.0) ** 2)
    drawn = features.CachedBatches(contents, stats, 2, 16, seed=0, bold=0.5)
    counts = torch.bincount(torch.cat([next(drawn)[1][:, 0, 0] for _ in range(2000)]).long(), minlength=4)
    torch.testing.assert_close(counts / counts.sum(), torch.arange(1.0, 5.0) / 10, atol=0.02, rtol=0)
    even = features.CachedBatches(contents, stats, 2, 16, seed=0)
    counts = torch.bincount(torch.cat([next(even)[1][:, 0, 0] for _ in range(200)]).long(), minlength=4)
    assert counts.tolist() == [100] * 4  # each once an epoch, as before


def test_style_gain_and_bold_styles_need_the_cache_and_are_described(dataset, tmp_path, capsys):
    assert exit_status(train_args(dataset, tmp_path / "a", "--max-iter", "1", "--style-gain", "0.2")) != 0
    err = capsys.readouterr().err
    assert "--style-gain needs --feature-cache" in err and "Traceback" not in err
    assert exit_status(train_args(dataset, tmp_path / "a", "--max-iter", "1", "--style-gain", "-1")) != 0
    assert "--style-gain" in capsys.readouterr().err
    gaining = ["--feature-cache", tmp_path / "cache", "--style-gain", "0.2"]
    assert main(train_args(dataset, tmp_path / "b", "--max-iter", "2", *gaining)) == 0
    assert "each channel's statistics scaled by a random gain (log-std 0.2)" in capsys.readouterr().err
    assert (tmp_path / "b" / "decoder.safetensors").is_file()
    assert exit_status(train_args(dataset, tmp_path / "c", "--max-iter", "1", "--bold-styles", "1")) != 0
    assert "--bold-styles needs --feature-cache" in capsys.readouterr().err
    bold = ["--feature-cache", tmp_path / "cache", "--bold-styles", "1"]
    assert main(train_args(dataset, tmp_path / "d", "--max-iter", "2", *bold)) == 0
    assert "styles drawn by their energy to the power 1" in capsys.readouterr().err


def test_style_layer_weights_scale_each_taps_terms():
    from adain.losses import style_loss_terms

    torch.manual_seed(5)
    encoder, decoder = Encoder().eval(), Decoder()
    content, style = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    _, plain, _ = AdaINLoss(encoder, decoder)(content, style)
    _, weighted, _ = AdaINLoss(encoder, decoder, style_layer_weights=(1, 2, 0, 1))(content, style)
    with torch.no_grad():
        t = adain(encoder(content), encoder.taps(style)[-1])
        terms = style_loss_terms(encoder.taps(decoder(t)), [mean_std(x) for x in encoder.taps(style)])
    relu2_1, relu3_1 = sum(terms[1]).item(), sum(terms[2]).item()
    assert abs(relu2_1 - relu3_1) > 1e-2 * plain.item()  # so that ignored weights would fail
    assert weighted.item() == pytest.approx(plain.item() + relu2_1 - relu3_1, rel=1e-4)


def test_clamp_output_measures_the_saved_image_and_brings_pixels_back():
    from adain.losses import clamped, style_loss

    torch.manual_seed(5)
    encoder, decoder = Encoder().eval(), Decoder()
    with torch.no_grad():
        decoder[-1].weight *= 200  # outputs spread well beyond [0, 1], so a clamp shows
        decoder[-1].bias += 0.5
    content, style = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    _, raw, _ = AdaINLoss(encoder, decoder)(content, style)
    _, clamped_style, _ = AdaINLoss(encoder, decoder, clamp_output=True)(content, style)
    with torch.no_grad():
        t = adain(encoder(content), encoder.taps(style)[-1])
        output = decoder(t)
        assert ((output < 0) | (output > 1)).float().mean() > 0.2
        saved = output.clamp(0, 1)
        expected = style_loss(encoder.taps(saved), encoder.taps(style))
    assert clamped_style.item() == pytest.approx(expected.item(), rel=1e-4)
    assert abs(clamped_style.item() - raw.item()) > 1e-2 * raw.item()
    # a pixel beyond the range takes its gradient only where a descent step brings it back in
    image = torch.tensor([-0.5, 0.5, 1.5, 1.5, -0.5], requires_grad=True)
    (clamped(image) * torch.tensor([1.0, 2.0, 3.0, -3.0, -1.0])).sum().backward()
    assert clamped(image).tolist() == [0.0, 0.5, 1.0, 1.0, 0.0]
    assert image.grad.tolist() == [0.0, 2.0, 3.0, 0.0, -1.0]


def test_clamp_output_flag(dataset, tmp_path, capsys):
    run = tmp_path / "a"
    assert main(train_args(dataset, run, "--max-iter", "2", "--clamp-output")) == 0
    assert "losses of the output clamped to [0, 1]" in capsys.readouterr().err
    with pytest.warns(UserWarning, match=r"recipe changed: --clamp-output True -> False$"):
        assert main(train_args(dataset, run, "--max-iter", "3", "--resume")) == 0


def test_style_layer_weights_flag(dataset, tmp_path, capsys):
    for bad, message in (("1,2,1", "takes 4 numbers (relu1_1, relu2_1, relu3_1, relu4_1)"),
                         ("1,-1,1,1", "none negative"), ("0,0,0,0", "not all 0"),
                         ("1,x,1,1", "expected comma-separated numbers")):  # fmt: skip
        assert (
            exit_status(train_args(dataset, tmp_path / "a", "--max-iter", "1", "--style-layer-weights", bad))
            != 0
        )
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
        assert not (tmp_path / "a").exists()
    run = tmp_path / "b"
    assert main(train_args(dataset, run, "--max-iter", "2", "--style-layer-weights", "1,2,1,1")) == 0
    assert "style loss taps weighted 1,2,1,1" in capsys.readouterr().err
    assert (run / "decoder.safetensors").is_file()
    with pytest.warns(
        UserWarning, match=r"recipe changed: --style-layer-weights \(1.0, 2.0, 1.0, 1.0\) -> \(\)$"
    ):
        assert main(train_args(dataset, run, "--max-iter", "3", "--resume")) == 0


def test_style_targets_choose_the_cache_and_whole_needs_one(dataset, tmp_path, capsys):
    cache = tmp_path / "cache"
    assert (
        exit_status(train_args(dataset, tmp_path / "a", "--max-iter", "1", "--style-targets", "whole")) != 0
    )
    err = capsys.readouterr().err
    assert "--style-targets whole needs --feature-cache" in err and "Traceback" not in err
    assert not (tmp_path / "a").exists()
    assert main(train_args(dataset, tmp_path / "b", "--max-iter", "1", "--feature-cache", cache)) == 0
    assert "style targets from 16 crops each" in capsys.readouterr().err
    whole = ["--max-iter", "1", "--feature-cache", cache, "--style-targets", "whole"]
    assert main(train_args(dataset, tmp_path / "c", *whole)) == 0
    assert len(list(cache.glob("style-*"))) == 2 and len(list(cache.glob("content-*"))) == 1


def test_style_scales_cut_the_cached_style_crops_at_each_short_side(dataset, tmp_path, capsys):
    cache_two = tmp_path / "two"
    one = cached_style_means(dataset, tmp_path / "a", tmp_path / "one")
    two = cached_style_means(dataset, tmp_path / "b", cache_two, "--style-scales", "40,32", iterations=2)
    assert "16 crops each at short sides 40 and 32 px" in capsys.readouterr().err
    assert len(read_log(tmp_path / "b")) == 2
    assert one.shape == (4, 16, 960) and two.shape == (4, 32, 960)
    # the first scale's crops are the one-scale cache's; at the smaller scale the statistics differ
    torch.testing.assert_close(two[:, :16], one)
    assert not torch.allclose(two[:, 16:], one, atol=1e-3)
    # a scale below the crop, or without crops from the cache: a one-line error, no run folder
    for bad, message in ((["--feature-cache", cache_two, "--style-scales", "40,24"], "smaller than --crop-size 32"),
                         (["--style-scales", "40,32"], "--style-scales needs --feature-cache"),
                         (["--feature-cache", cache_two, "--style-targets", "whole", "--style-scales", "40"],
                          "--style-scales needs --feature-cache and style targets from crops")):  # fmt: skip
        assert exit_status(train_args(dataset, tmp_path / "bad", "--max-iter", "1", *bad)) != 0
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and not (tmp_path / "bad").exists()


def test_no_style_upscale_keeps_small_style_images_at_their_own_size(tmp_path, capsys):
    content, style = tmp_path / "content", tmp_path / "style"
    content.mkdir()
    style.mkdir()
    for i in range(2):
        make_image(content / f"c{i}.jpg", (48, 40), seed=i)
        make_image(style / f"a_small{i}.png", (34, 33), seed=20 + i)  # below the load size, above the crop
        make_image(style / f"b_big{i}.png", (40, 52), seed=10 + i)  # at the load size already
    dataset = (content, style)
    upscaled = cached_style_means(dataset, tmp_path / "a", tmp_path / "upscaled")
    native = cached_style_means(dataset, tmp_path / "b", tmp_path / "native", "--no-style-upscale")
    assert "smaller style images never upscaled" in capsys.readouterr().err
    # files sorted: the small ones first, so a size chosen for one must not carry over to the next
    torch.testing.assert_close(native[2:], upscaled[2:])
    assert not torch.allclose(native[:2], upscaled[:2], atol=1e-3)
    # what the encoder is given: the small images at their own size, the others at the load size
    from adain import features

    def sizes_seen(upscale):
        seen = []

        def taps(x):
            seen.append(min(x.shape[-2:]))
            return [torch.ones(1, c, *(n // s for n in x.shape[-2:])) for c, s in
                    zip(features.TAP_CHANNELS, features.TAP_STRIDES, strict=True)]  # fmt: skip

        features.encode_styles(sorted(style.iterdir()), 40, taps, 32, upscale=upscale)
        return seen

    assert sizes_seen(True) == [40, 40, 40, 40] and sizes_seen(False) == [33, 33, 40, 40]
    status = exit_status(train_args(dataset, tmp_path / "bad", "--max-iter", "1", "--no-style-upscale"))
    err = capsys.readouterr().err
    assert status != 0 and "--no-style-upscale needs --feature-cache" in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()


def test_hue_rotation_keeps_grey_and_a_third_of_a_turn_cycles_the_channels():
    from adain.features import hue_rotation

    grey = torch.full((3,), 0.4)
    torch.testing.assert_close(hue_rotation(1.1) @ grey, grey)
    torch.testing.assert_close(hue_rotation(2 * torch.pi / 3) @ torch.tensor([1.0, 0.0, 0.0]),
                               torch.tensor([0.0, 1.0, 0.0]), atol=1e-6, rtol=0)  # fmt: skip
    torch.testing.assert_close(hue_rotation(0.0), torch.eye(3))


def test_jittered_crops_keep_their_pixels_and_only_turn_hue_recolours():
    from adain.features import jittered

    crop = torch.rand(1, 3, 8, 6)
    generator = torch.Generator().manual_seed(0)
    turned = [jittered(crop, generator) for _ in range(8)]
    assert {tuple(t.shape) for t in turned} == {(1, 3, 8, 6), (1, 3, 6, 8)}  # some turned a quarter
    for t in turned:  # the same pixels, rearranged
        torch.testing.assert_close(t.flatten(2).sort().values, crop.flatten(2).sort().values)
    generator = torch.Generator().manual_seed(0)
    recoloured = [jittered(crop, generator, "turn+hue") for _ in range(8)]
    assert any(not torch.allclose(r.mean((2, 3)), crop.mean((2, 3)), atol=1e-3) for r in recoloured)
    generator = torch.Generator().manual_seed(0)
    halves = [jittered(crop, generator, "half-turn") for _ in range(8)]  # strokes keep their orientation
    upright = [torch.equal(h, crop) for h in halves]
    assert all(u or torch.equal(h, crop.flip(-2, -1)) for h, u in zip(halves, upright, strict=True))
    assert any(upright) and not all(upright)
    generator = torch.Generator().manual_seed(0)
    muted = 0.4 + 0.2 * crop  # colours a turn of the hue keeps inside [0, 1], so nothing is clamped
    tinted = [jittered(muted, generator, "hue") for _ in range(8)]  # the palette changes, never the strokes
    same = [torch.equal(t, muted) for t in tinted]
    assert any(same) and not all(same)
    for t in tinted:  # a turn about the grey axis keeps each pixel's brightness
        torch.testing.assert_close(t.mean(1), muted.mean(1))


def test_jitter_styles_caches_other_statistics_the_same_each_time(dataset, tmp_path, capsys):
    plain, jittered = tmp_path / "plain", tmp_path / "jittered"
    unjittered = cached_style_means(dataset, tmp_path / "a", plain)
    first = cached_style_means(dataset, tmp_path / "b", jittered, "--jitter-styles", "turn+hue")
    assert "turned, mirrored and recoloured at random" in capsys.readouterr().err
    assert first.shape == unjittered.shape == (4, 16, 960)
    assert not torch.allclose(first, unjittered, atol=1e-3)
    next(jittered.glob("style-*")).unlink()  # rebuilt from the same seeds: the same targets
    again = cached_style_means(dataset, tmp_path / "c", jittered, "--jitter-styles", "turn+hue")
    torch.testing.assert_close(again, first)
    capsys.readouterr()
    turn = ["--max-iter", "1", "--feature-cache", jittered, "--jitter-styles", "turn"]
    assert main(train_args(dataset, tmp_path / "d", *turn)) == 0  # its own cache file beside the other
    assert (
        "turned, mirrored at random" in capsys.readouterr().err and len(list(jittered.glob("style-*"))) == 2
    )
    hue = cached_style_means(dataset, tmp_path / "f", tmp_path / "hue", "--jitter-styles", "hue")
    assert "recoloured at random" in capsys.readouterr().err
    assert hue.shape == unjittered.shape and not torch.allclose(hue, unjittered, atol=1e-3)
    half = cached_style_means(dataset, tmp_path / "e", tmp_path / "half", "--jitter-styles", "half-turn")
    assert "turned by 180 degrees at random" in capsys.readouterr().err
    assert half.shape == unjittered.shape and not torch.allclose(half, unjittered, atol=1e-3)
    for bad in (
        ["--jitter-styles", "turn"],
        ["--feature-cache", plain, "--style-targets", "whole", "--jitter-styles", "turn"],
    ):
        assert exit_status(train_args(dataset, tmp_path / "bad", "--max-iter", "1", *bad)) != 0
        err = capsys.readouterr().err
        assert "--jitter-styles needs --feature-cache and style targets from crops" in err
        assert "Traceback" not in err and not (tmp_path / "bad").exists()
    # the API checks what argparse's choices check on the command line
    from adain.errors import AdainError
    from adain.train import TrainConfig, Trainer

    content, style = dataset
    with pytest.raises(AdainError, match="--jitter-styles must be one of turn, turn\\+hue, hue, half-turn"):
        Trainer(TrainConfig(str(content), str(style), str(tmp_path / "api"), feature_cache=str(plain),
                            style_jitter="tint"))  # type: ignore[arg-type]  # fmt: skip


def test_a_cached_run_from_before_style_targets_resumes_as_whole_image_targets(dataset, tmp_path):
    from adain.train import load_checkpoint_file

    out, cache = tmp_path / "run", tmp_path / "cache"
    assert main(train_args(dataset, out, "--max-iter", "1", "--feature-cache", cache)) == 0
    checkpoint = load_checkpoint_file(out / "checkpoint.pt")
    del checkpoint["config"]["style_targets"]  # as written before the flag existed
    torch.save(checkpoint, out / "checkpoint.pt")
    with pytest.warns(UserWarning, match=r"recipe changed: --style-targets whole -> crops$"):
        assert main(train_args(dataset, out, "--max-iter", "2", "--feature-cache", cache, "--resume")) == 0


def test_ema_is_the_moving_average_of_the_trained_weights(dataset):
    content, style = dataset
    config = TrainConfig(str(content), str(style), "unused", load_size=40, crop_size=32, batch_size=2,
                         workers=0, tensorboard=False, ema=0.5, lr=1e-2,
                         vgg=str(SHARED_VGG) if SHARED_VGG.is_file() else None)  # fmt: skip
    trainer = Trainer(config, progress=False)
    torch.manual_seed(0)
    expected = None
    for _ in range(3):
        trainer.step(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
        trained = {k: v.detach().clone() for k, v in trainer.decoder.state_dict().items()}
        # the first step's weights are copied; after that, halfway towards each step's weights
        expected = trained if expected is None else {k: 0.5 * expected[k] + 0.5 * trained[k] for k in trained}
    averaged = trainer.exported.state_dict()
    assert all(torch.allclose(averaged[k], expected[k], atol=1e-6) for k in expected)
    assert not all(torch.equal(averaged[k], trained[k]) for k in trained)


def test_ema_run_exports_and_resumes_its_average(dataset, tmp_path, capsys):
    from safetensors import safe_open

    from adain.train import decoder_state, load_checkpoint_file

    out = tmp_path / "run"
    assert main(train_args(dataset, out, "--max-iter", 3, "--ema", "0.9", "--lr", "1e-2")) == 0
    ckpt = load_checkpoint_file(out / "checkpoint.pt")
    assert int(ckpt["averaged"]["n_averaged"]) == 3
    assert "moving average of the weights, decay 0.9; iteration 0 of 3" in capsys.readouterr().err
    averaged, trained = decoder_state(ckpt), decoder_state(ckpt, averaged=False)
    exported = torch.load(out / "decoder.pth", weights_only=True)
    assert all(torch.equal(exported[k], averaged[k]) for k in exported)
    assert not all(torch.equal(exported[k], trained[k]) for k in exported)
    with safe_open(str(out / "decoder.safetensors"), "pt") as f:
        assert f.metadata()["weights"] == "moving average, decay 0.9"
    # resumed, the average goes on from the checkpoint's: 5 steps counted, not 2
    assert main(train_args(dataset, out, "--max-iter", 5, "--ema", "0.9", "--lr", "1e-2", "--resume")) == 0
    assert int(load_checkpoint_file(out / "checkpoint.pt")["averaged"]["n_averaged"]) == 5
    # a run without one that turns it on when resumed: the recipe change is told, the average starts there
    plain = tmp_path / "plain"
    assert main(train_args(dataset, plain, "--max-iter", 2)) == 0
    capsys.readouterr()
    with pytest.warns(UserWarning, match="--ema 0.0 -> 0.9"):
        assert main(train_args(dataset, plain, "--max-iter", 4, "--ema", "0.9", "--resume")) == 0
    assert int(load_checkpoint_file(plain / "checkpoint.pt")["averaged"]["n_averaged"]) == 2


def test_keep_every_keeps_the_exported_decoder_at_each_multiple(dataset, tmp_path):
    from safetensors import safe_open

    from adain.weights import load_decoder_state

    out = tmp_path / "run"
    flags = ["--ema", "0.9", "--lr", "1e-2", "--keep-every", 2]
    assert main(train_args(dataset, out, "--max-iter", 3, *flags)) == 0
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["decoder-2.safetensors"]
    assert main(train_args(dataset, out, "--max-iter", 4, *flags, "--resume")) == 0
    snapshots = out / "snapshots"
    assert sorted(p.name for p in snapshots.iterdir()) == ["decoder-2.safetensors", "decoder-4.safetensors"]
    # the last one is what the run exported at its end (the moving average), the earlier one is not
    final = load_decoder_state(out / "decoder.safetensors")
    last, earlier = (load_decoder_state(snapshots / f"decoder-{n}.safetensors") for n in (4, 2))
    assert all(torch.equal(last[k], final[k]) for k in final)
    assert not all(torch.equal(earlier[k], final[k]) for k in final)
    with safe_open(str(snapshots / "decoder-2.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["iterations"] == "2" and meta["weights"] == "moving average, decay 0.9"


def test_package_decoder_at_ships_a_kept_decoder_with_the_log_up_to_it(dataset, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    from adain.weights import load_decoder_state

    run = tmp_path / "run"
    flags = ["--ema", "0.9", "--lr", "1e-2", "--keep-every", 2]
    assert main(train_args(dataset, run, "--max-iter", 2, *flags)) == 0
    assert main(train_args(dataset, run, "--max-iter", 4, "--resume", *flags)) == 0  # a second sitting
    script = Path(__file__).resolve().parents[1] / "scripts" / "package_decoder.py"
    out, card = tmp_path / "at2.safetensors", tmp_path / "card"
    package = [sys.executable, script, run, "--out", out, "--card", card, "--offset", "10"]
    done = subprocess.run([*package, "--at", "2"], check=True, capture_output=True, text=True)
    assert "  0->2  " in done.stdout and "2->4" not in done.stdout  # the sittings up to K only
    kept = load_decoder_state(run / "snapshots" / "decoder-2.safetensors")
    shipped, final = load_file(out), load_decoder_state(run / "decoder.safetensors")
    assert all(torch.equal(shipped[k], kept[k].half()) for k in kept)
    assert not all(torch.equal(shipped[k], final[k].half()) for k in final)  # not the checkpoint's
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    assert meta["iterations"] == "12" and meta["weights"] == "moving average, decay 0.9"
    card_log = (card / "train-log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in card_log[1:]] == ["11", "12"]
    for bad, message in (
        (["--at", "3"], "no decoder kept at iteration 3"),
        (["--at", "2", "--raw"], "exclude"),
        (["--at", "2", "--since", "2"], "no iterations after 2 up to 2"),
    ):
        done = subprocess.run([*package, *bad], capture_output=True, text=True)
        assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("ema", ["1", "1.5"])
def test_ema_decay_must_be_below_one(dataset, tmp_path, capsys, ema):
    assert main(train_args(dataset, tmp_path / "run", "--max-iter", 1, "--ema", ema)) != 0
    err = capsys.readouterr().err
    assert "--ema must be at least 0 and below 1" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_package_decoder_ships_the_average_unless_raw(dataset, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    from adain.train import decoder_state, load_checkpoint_file

    run = tmp_path / "run"
    assert main(train_args(dataset, run, "--max-iter", 2, "--ema", "0.5", "--lr", "1e-2")) == 0
    ckpt = load_checkpoint_file(run / "checkpoint.pt")
    script = Path(__file__).resolve().parents[1] / "scripts" / "package_decoder.py"
    earlier = [
        "--continues",
        run / "log.csv",
        "--continues",
        run / "log.csv",
        "--offset",
        "4",
    ]  # two stages before
    for flags, averaged in (([], True), (["--raw", *earlier], False)):
        out = tmp_path / f"decoder{len(flags)}.safetensors"
        subprocess.run([sys.executable, script, run, "--out", out, "--card", tmp_path / "card", *flags],
                       check=True, capture_output=True)  # fmt: skip
        shipped, wanted = load_file(out), decoder_state(ckpt, averaged)
        assert all(torch.equal(shipped[k], wanted[k].half()) for k in shipped)
        with safe_open(str(out), "pt") as f:  # labelled as the trainer's own export labels it
            assert f.metadata()["weights"] == ("moving average, decay 0.5" if averaged else "as trained")
        assert (tmp_path / "card" / "loss.png").stat().st_size > 1000
    card_log = (tmp_path / "card" / "train-log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in card_log[1:]] == ["5", "6"]  # this run's, counted on from 4
    # a branch of a copied run folder: the iterations after the branch point only
    branch = [
        sys.executable,
        script,
        run,
        "--out",
        tmp_path / "branch.safetensors",
        "--card",
        tmp_path / "card",
    ]
    subprocess.run([*branch, "--offset", "4", "--since", "1"], check=True, capture_output=True)
    card_log = (tmp_path / "card" / "train-log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in card_log[1:]] == ["6"]
    branch[4] = tmp_path / "none.safetensors"
    done = subprocess.run([*branch, "--since", "2"], capture_output=True, text=True)
    assert done.returncode != 0 and "no iterations after 2" in done.stderr and "Traceback" not in done.stderr
    assert not branch[4].exists()


def test_distil_feedback_targets_the_teachers_two_passes():
    from adain.nets import adain_stats, feedback_targets

    torch.manual_seed(5)
    encoder, student, teacher = Encoder().eval(), Decoder(), Decoder()
    with torch.no_grad():
        teacher[-1].bias += 0.3  # another decoder than the student, with outputs inside [0, 1] in part
    content, style = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    taught = AdaINLoss(encoder, student, teacher=teacher, teacher_feedback=0.5, teacher_alpha=0.9)
    content_loss_taught, style_taught, _ = taught(content, style)
    content_plain, style_plain, _ = AdaINLoss(encoder, student)(content, style)
    with torch.no_grad():  # the teacher's two passes by hand, as Stylizer paints with feedback 0.5, alpha 0.9
        f, wanted = encoder(content), mean_std(encoder.taps(style)[-1])
        t = adain(f, encoder.taps(style)[-1])
        made = mean_std(encoder(teacher(t).clamp(0, 1)))
        moved = adain_stats(f, *feedback_targets(wanted, made, 0.5))
        target = encoder(teacher(0.9 * moved + 0.1 * f).clamp(0, 1))
        expected = torch.nn.functional.mse_loss(encoder(student(t)), target)
    assert content_loss_taught.item() == pytest.approx(expected.item(), rel=1e-4)
    assert abs(content_loss_taught.item() - content_plain.item()) > 1e-2 * content_plain.item()
    assert style_taught.item() == pytest.approx(style_plain.item(), rel=1e-5)  # the style loss is the paper's
    assert not any(p.requires_grad for p in teacher.parameters())


def test_distil_feedback_flag_keeps_its_teacher(dataset, tmp_path, capsys, decoder_file):
    run = tmp_path / "a"
    assert exit_status(train_args(dataset, run, "--max-iter", "1", "--distil-feedback", "0.5")) != 0
    err = capsys.readouterr().err
    assert "--distil-feedback needs a teacher: --teacher or --init-decoder" in err and "Traceback" not in err
    assert not run.exists()
    args = ("--distil-feedback", "0.5", "--distil-alpha", "0.93", "--init-decoder", str(decoder_file))
    assert exit_status(train_args(dataset, run, "--max-iter", "1", *args, "--content-target", "fc")) != 0
    err = capsys.readouterr().err
    assert "it does not go with --content-target fc" in err and "Traceback" not in err
    assert not run.exists()
    assert main(train_args(dataset, run, "--max-iter", "2", *args)) == 0
    assert "content target: the teacher's two passes (feedback 0.5, alpha 0.93" in capsys.readouterr().err
    kept = (run / "teacher.safetensors").read_bytes()
    # resumed with another --teacher (the shipped decoder): the run keeps the teacher it started with
    shipped = Path(__file__).resolve().parents[1] / "src" / "adain" / "decoder.safetensors"
    assert (
        main(train_args(dataset, run, "--max-iter", "3", *args, "--teacher", str(shipped), "--resume")) == 0
    )
    assert (run / "teacher.safetensors").read_bytes() == kept
    with pytest.warns(UserWarning, match=r"recipe changed: --distil-feedback 0.5 -> 0.0"):
        assert (
            main(train_args(dataset, run, "--max-iter", "4", "--init-decoder", str(decoder_file), "--resume"))
            == 0
        )


def test_a_narrow_init_decoder_is_widened_and_the_run_keeps_its_width(dataset, tmp_path, capsys):
    first = tmp_path / "first"
    assert main(train_args(dataset, first, "--max-iter", 1)) == 0
    wide = tmp_path / "wide"
    args = train_args(dataset, wide, "--max-iter", 1, "--init-decoder", first / "decoder.pth", "--lr", "0",
                      "--decoder-width", "1.5")  # fmt: skip
    assert main(args) == 0
    assert "decoder 1.5 times as wide as the paper's" in capsys.readouterr().err
    from adain import weights

    narrow, _ = weights.load_decoder(first / "decoder.safetensors")
    widened, found = weights.load_decoder(wide / "decoder.safetensors")
    assert found.width == 1.5 and widened[1].out_channels == 384
    features = torch.rand(1, 512, 5, 4)
    with torch.no_grad():  # lr 0: the widened weights as they started, painting what the narrow ones paint
        assert torch.allclose(widened(features), narrow(features), atol=1e-5)

    assert main([*args[:-2], "--max-iter", "2", "--resume"]) == 1  # resumed at the paper's width
    assert "trained with --decoder-norm none --decoder-width 1.5, not none and 1" in capsys.readouterr().err
    narrower = train_args(dataset, tmp_path / "narrower", "--max-iter", 1, "--init-decoder",
                          wide / "decoder.pth", "--decoder-width", "1.25")  # fmt: skip
    assert main(narrower) == 1
    assert "has width 1.5, wider than --decoder-width 1.25" in capsys.readouterr().err


def test_fresh_channels_train_at_their_own_rate(dataset, tmp_path, capsys):
    first = tmp_path / "first"
    assert main(train_args(dataset, first, "--max-iter", 1)) == 0
    wide = tmp_path / "wide"
    assert main(train_args(dataset, wide, "--max-iter", 1, "--init-decoder", first / "decoder.pth", "--lr", "1e-4",
                           "--lr-decay", "0", "--decoder-width", "1.5", "--widen", "fresh",
                           "--new-channel-lr", "10")) == 0  # fmt: skip
    assert "its added channels at 10 times the lr" in capsys.readouterr().err
    from adain import weights
    from adain.nets import new_channels, widen_decoder

    narrow, _ = weights.load_decoder(first / "decoder.safetensors")
    trained, _ = weights.load_decoder(wide / "decoder.safetensors")
    start = dict(widen_decoder(narrow, 1.5, seed=0, mode="fresh").named_parameters())
    masks = new_channels(trained)
    old_steps, new_steps = [], []
    for name, param in trained.named_parameters():
        step = (param - start[name]).abs().detach()
        old_steps.append(step[~masks[name]])
        new_steps.append(step[masks[name]])
    # Adam's first step is about the lr in every parameter with a gradient
    assert torch.cat(old_steps).max() == pytest.approx(1e-4, rel=0.05)
    assert torch.cat(new_steps).max() == pytest.approx(1e-3, rel=0.05)


def test_widening_flags_without_a_widening_are_refused(dataset, tmp_path, capsys):
    assert main(train_args(dataset, tmp_path / "a", "--new-channel-lr", "10")) == 1
    assert (
        "--new-channel-lr applies to the channels --decoder-width adds, and the width is 1"
        in capsys.readouterr().err
    )
    assert main(train_args(dataset, tmp_path / "b", "--decoder-width", "1.5", "--widen", "fresh")) == 1
    assert "--widen fresh widens an --init-decoder, and there is none" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_bad_decoder_width_is_refused_before_a_run_starts(dataset, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(train_args(dataset, tmp_path / "run", "--decoder-width", "0.5"))
    assert (
        exit_.value.code == 2
        and "--decoder-width: a decoder width must be a multiple of 1/64" in capsys.readouterr().err
    )
    assert not (tmp_path / "run").exists()


def packed_decoder_targets(decoder, features, layers):
    """The decoder match's targets for a batch of relu4_1 ``features``, laid out as the cache keeps them."""
    from adain.decoder_match import decoder_statistics
    from adain.features import end_to_end

    rows = []
    with torch.no_grad():
        for one in features.split(1):
            stats = decoder_statistics(decoder, one)
            rows.append(torch.stack(end_to_end([stats[k] for k in layers])))
    return torch.stack(rows)


def encoded_batch(encoder):
    """Two random 32 px content and style images encoded: the content's relu4_1, the style's, its
    four taps' statistics, and those laid out as the feature cache keeps them (B, 2, 960)."""
    content, style = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        stats = [mean_std(t) for t in encoder.taps(style)]
        packed = torch.stack(
            [torch.cat([m.flatten(1) for m, _ in stats], 1), torch.cat([s.flatten(1) for _, s in stats], 1)],
            1,
        )
        return encoder(content), encoder(style), stats, packed


def test_decoder_match_loss_is_the_style_loss_form_on_the_decoders_relus():
    from adain.decoder_match import decoder_statistics
    from adain.features import STYLE_WIDTH

    torch.manual_seed(6)
    encoder, student, teacher = Encoder().eval(), Decoder(), Decoder()
    content_feat, style_feat, stats, packed = encoded_batch(encoder)
    targets = packed_decoder_targets(teacher, style_feat, (0, 6))
    assert targets.shape == (2, 2, 256 + 64)
    model = AdaINLoss(encoder, student, match_layers=(0, 6))
    plain = AdaINLoss(encoder, student)(content_feat, packed, cached=True)
    losses = model(content_feat, torch.cat([packed, targets], 2), cached=True)
    # the paper's two losses are unchanged by the targets riding along
    assert losses.content.item() == pytest.approx(plain.content.item(), rel=1e-5)
    assert losses.style.item() == pytest.approx(plain.style.item(), rel=1e-5)
    assert plain.decoder_match.item() == 0
    with torch.no_grad():  # by hand: the student's ReLUs decoding t against the teacher's decoding the style
        t = adain(content_feat, style_feat)
        errors, energy = {0: 0.0, 6: 0.0}, {0: 0.0, 6: 0.0}
        for i in range(2):
            made = decoder_statistics(student, t[i : i + 1])
            wanted = decoder_statistics(teacher, style_feat[i : i + 1])
            for k in (0, 6):
                error = sum(((a - b) ** 2).mean() for a, b in zip(made[k], wanted[k], strict=True))
                energy[k] += sum((b**2).mean() for b in wanted[k]) / 2  # the mean square over the batch
                errors[k] += error / 2
        expected = sum(errors[k] / (energy[k] / 2) for k in (0, 6)).item()
    assert losses.decoder_match.item() == pytest.approx(expected, rel=1e-4)
    assert targets.shape[-1] + STYLE_WIDTH == 960 + 320
    losses.decoder_match.backward()
    assert student[1].weight.grad is not None and student[1].weight.grad.abs().sum() > 0
    # the decoder's own statistics decoding the style itself are its targets: nothing to learn
    same = AdaINLoss(encoder, teacher, match_layers=(0, 6))
    own = same(style_feat, torch.cat([packed, targets], 2), cached=True)
    assert own.decoder_match.item() < 1e-6 * max(expected, 1)


def test_decoder_match_weight_trains_towards_its_teachers_cached_targets(
    dataset, tmp_path, capsys, decoder_file
):
    from safetensors.torch import load_file

    run, cache = tmp_path / "run", tmp_path / "cache"
    args = ("--feature-cache", cache, "--style-targets", "whole", "--init-decoder", decoder_file,
            "--decoder-match-weight", "2", "--lr", "0")  # fmt: skip
    assert main(train_args(dataset, run, "--max-iter", 2, *args)) == 0
    assert "decoder match at ReLUs 0,6, weight 2, towards the teacher's" in capsys.readouterr().err
    (found,) = cache.glob("decoder-*.safetensors")
    targets = load_file(found)
    assert targets["mean"].shape == (4, 1, 320) and targets["std"].shape == (4, 1, 320)
    # the logged total carries the match's term: more than the paper's two
    for row in read_log(run):
        assert float(row["loss"]) > float(row["content"]) + 10 * float(row["style"]) + 1e-4
    made = found.stat().st_mtime_ns
    # resumed, the teacher is the run's copy (other file bytes, the same weights): the cache is reused
    assert main(train_args(dataset, run, "--max-iter", 3, *args, "--resume")) == 0
    assert [p.stat().st_mtime_ns for p in cache.glob("decoder-*.safetensors")] == [made]
    # other ReLUs are another cache file
    assert (
        main(train_args(dataset, tmp_path / "b", "--max-iter", 1, *args, "--decoder-match-layers", "7")) == 0
    )
    assert sorted(load_file(p)["mean"].shape[-1] for p in cache.glob("decoder-*.safetensors")) == [64, 320]


def test_training_with_the_decoder_match_on_decodes_as_stylize_does():
    from adain.decoder_match import DecoderMatch, decoder_statistics
    from adain.losses import style_loss_to
    from adain.weights import load_decoder, load_encoder

    torch.manual_seed(7)  # trained networks: random ones paint a flat image the match hardly changes
    encoder = load_encoder(SHARED_VGG if SHARED_VGG.is_file() else None)[0].eval()
    student, teacher = load_decoder()[0], load_decoder()[0]
    with torch.no_grad():  # a teacher whose ReLUs hold other statistics
        for param in teacher.parameters():
            param.mul_(1.2)
    content_feat, style_feat, stats, packed = encoded_batch(encoder)
    batch = torch.cat([packed, packed_decoder_targets(teacher, style_feat, (0, 6))], 2)
    plain = AdaINLoss(encoder, student)(content_feat, packed, cached=True)
    on = AdaINLoss(encoder, student, match_layers=(0, 6), match_share=0.75)(content_feat, batch, cached=True)
    with torch.no_grad():  # by hand: stylize's match, each image towards the teacher's decoding of its style
        t = adain(content_feat, style_feat)
        targets = []
        for i in range(2):
            wanted = decoder_statistics(teacher, style_feat[i : i + 1])
            targets.append([(wanted[0], wanted[6])])
        output = DecoderMatch((0, 6), targets, [0.75, 0.75]).decode(student, t, None)
        output_taps = encoder.taps(output)
    assert on.style.item() == pytest.approx(style_loss_to(output_taps, stats).item(), rel=1e-4)
    assert on.content.item() == pytest.approx(content_loss(output_taps[-1], t).item(), rel=1e-4)
    assert abs(on.style.item() - plain.style.item()) > 0.05 * plain.style.item()  # the match moved it
    assert on.decoder_match.item() == 0  # no loss of its own: the targets are moved towards
    (on.content + on.style).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_decoder_match_on_trains_from_the_same_cached_targets(dataset, tmp_path, capsys, decoder_file):
    run, cache = tmp_path / "run", tmp_path / "cache"
    args = ("--feature-cache", cache, "--style-targets", "whole", "--init-decoder", decoder_file)
    assert main(train_args(dataset, run, "--max-iter", 2, *args, "--decoder-match", "0.5")) == 0
    assert "decoder match on at ReLUs 0,6, share 0.5, towards the teacher's" in capsys.readouterr().err
    (found,) = cache.glob("decoder-*.safetensors")
    made = found.stat().st_mtime_ns
    # the decoder it exports paints with the match it learnt with (tests/test_trained_match.py)
    exported = DecoderWeights.read(run / "decoder.safetensors")
    assert (exported.decoder_match, exported.decoder_match_layers) == (0.5, (0, 6))
    script = Path(__file__).resolve().parents[1] / "scripts" / "package_decoder.py"
    packaged = tmp_path / "packaged.safetensors"
    subprocess.run([sys.executable, script, run, "--out", packaged, "--card", tmp_path / "card"],
                   check=True, capture_output=True)  # fmt: skip
    assert DecoderWeights.read(packaged).decoder_match_layers == (0, 6)
    for row in read_log(run):  # no term of its own in the total
        assert float(row["loss"]) == pytest.approx(float(row["content"]) + 10 * float(row["style"]), rel=1e-4)
    # the loss form of the match reads the same targets: one cache file for both
    assert (
        main(train_args(dataset, tmp_path / "b", "--max-iter", 1, *args, "--decoder-match-weight", "1")) == 0
    )
    assert [p.stat().st_mtime_ns for p in cache.glob("decoder-*.safetensors")] == [made]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ("--feature-cache", "C", "--decoder-match-weight", "1"),
            "needs --feature-cache and --style-targets whole",
        ),
        (
            (
                "--decoder-match-weight",
                "1",
                "--style-targets",
                "whole",
                "--feature-cache",
                "C",
                "--style-gain",
                "0.2",
            ),
            "does not go with --style-gain",
        ),  # fmt: skip
        (
            ("--decoder-match-weight", "1", "--style-targets", "whole", "--feature-cache", "C"),
            "--decoder-match-weight needs a teacher",
        ),  # fmt: skip
        (
            (
                "--decoder-match-layers",
                "8",
            ),
            "decoder match layers are the decoder's ReLUs, 0 to 7",
        ),
        (
            (
                "--decoder-match-weight",
                "-1",
            ),
            "--decoder-match-weight",
        ),
        (("--decoder-match", "1.5"), "--decoder-match"),
        (
            ("--decoder-match", "0.5", "--decoder-match-weight", "1"),
            "--decoder-match and --decoder-match-weight do not go together",
        ),
        (("--decoder-match", "0.5", "--feature-cache", "C"), "--decoder-match needs --feature-cache"),
        (
            ("--decoder-match", "0.5", "--style-targets", "whole", "--feature-cache", "C"),
            "--decoder-match needs a teacher",
        ),
    ],
)
def test_decoder_match_weight_refusals(dataset, tmp_path, capsys, flags, message):
    flags = [str(tmp_path / "cache") if f == "C" else f for f in flags]
    assert exit_status(train_args(dataset, tmp_path / "run", "--max-iter", "1", *flags)) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
