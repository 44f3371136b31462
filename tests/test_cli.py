import csv
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from adain import __version__
from adain.cli import main

from .conftest import (
    CONTENT,
    MASK,
    SHARED_VGG,
    STYLE,
    STYLE2,
    exit_status,
    make_image,
    needs_shared,
    open_rgb,
    stylize_argv,
)


@pytest.fixture
def run(decoder_file, capsys):
    """Call `adain stylize ...` in-process with the test weights; returns (exit code, stderr)."""

    def call(*argv: str) -> tuple[int, str]:
        weights = ["--decoder", str(decoder_file), "--device", "cpu", "-q"]
        if SHARED_VGG.is_file():
            weights += ["--vgg", str(SHARED_VGG)]
        code = main(["stylize", *map(str, argv), *weights])
        return code, capsys.readouterr().err

    return call


@pytest.fixture
def pair(tmp_path):
    return make_image(tmp_path / "photo.jpg", (70, 50), seed=1), make_image(
        tmp_path / "art.png", (40, 40), seed=2
    )


@needs_shared
def test_canonical_sample_end_to_end(run, tmp_path):
    out = tmp_path / "result.jpg"
    code, err = run(CONTENT, "--style", STYLE, "-o", out, "--content-size", 64, "--style-size", 64)
    assert code == 0, err
    content = Image.open(CONTENT)
    expected = (round(content.width * 64 / content.height), 64) if content.height < content.width else None
    assert Image.open(out).size == (expected or Image.open(out).size)
    assert min(Image.open(out).size) == 64


def test_directory_output_names_and_ext(run, tmp_path, pair):
    content, style = pair
    style2 = make_image(tmp_path / "two.jpg", (40, 40), seed=3)
    code, err = run(content, "-s", style, style2, "-o", tmp_path / "out", "--ext", "png", "--content-size", 0)
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["photo_stylized_art.png", "photo_stylized_two.png"]
    assert Image.open(tmp_path / "out" / names[0]).size == (70, 50)


def test_style_directories_and_interpolation(run, tmp_path, pair):
    content, _ = pair
    styles = tmp_path / "styles"
    styles.mkdir()
    for i in range(3):
        make_image(styles / f"s{i}.png", (32, 32), seed=10 + i)
    (styles / "notes.txt").write_text("not an image, not picked up")
    code, err = run(
        content, "-s", styles, "--style-weights", "1,2,1", "-o", tmp_path / "out", "--content-size", 0
    )
    assert code == 0, err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["photo_stylized_s0+s1+s2.jpg"]


@needs_shared
def test_mask_alpha_and_preserve_color_flags(run, tmp_path):
    sizes = ["--content-size", 48, "--style-size", 48]
    assert run(CONTENT, "-s", STYLE, STYLE2, "--mask", MASK, "-o", tmp_path / "m.jpg", *sizes)[0] == 0
    assert (
        run(CONTENT, "-s", STYLE, "--alpha", 0.3, "--preserve-color", "-o", tmp_path / "a.jpg", *sizes)[0]
        == 0
    )
    assert run(CONTENT, "-s", STYLE, "--crop", "-o", tmp_path / "c.webp", *sizes)[0] == 0
    assert Image.open(tmp_path / "c.webp").size == (48, 48)


def test_forced_tiles_from_the_cli(run, tmp_path, pair):
    content, style = pair
    whole, tiled = tmp_path / "whole.png", tmp_path / "tiled.png"
    assert run(content, "-s", style, "-o", whole, "--content-size", 200)[0] == 0
    assert run(content, "-s", style, "-o", tiled, "--content-size", 200, "--tile", 64)[0] == 0
    a, b = (np.asarray(open_rgb(p), dtype=np.float64) for p in (whole, tiled))
    assert a.shape == b.shape and 10 * np.log10(255**2 / max(np.mean((a - b) ** 2), 1e-12)) >= 35


def test_output_problems_are_one_line_errors(run, tmp_path, pair):
    content, style = pair
    existing = tmp_path / "results.jpg"
    existing.write_bytes(b"x")
    other = make_image(tmp_path / "other.png", (32, 32), seed=4)
    code, err = run(content, "-s", style, other, "-o", existing)
    assert code == 1 and "is a file: give a directory for 2 results" in err
    code, err = run(content, "-s", style, other, "-o", tmp_path / "new.png")  # not made into a folder
    assert code == 1 and "new.png names one image, but there are 2 results: give a directory" in err
    assert not (tmp_path / "new.png").exists()
    code, err = run(content, "-s", style, "-o", existing / "sub" / "o.jpg", "--content-size", 0)
    assert code == 1 and "cannot write" in err and "Traceback" not in err


def test_cuda_without_a_gpu(tmp_path, pair, decoder_file, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    content, style = pair
    argv = ["stylize", str(content), "-s", str(style), "-o", str(tmp_path / "o.jpg"), "--device", "cuda"]
    assert main([*argv, "--decoder", str(decoder_file)]) == 1
    assert "no CUDA GPU" in capsys.readouterr().err


def test_existing_output_is_not_overwritten(run, tmp_path, pair):
    content, style = pair
    out = tmp_path / "out.jpg"
    Image.new("RGB", (5, 5), (1, 2, 3)).save(out)
    code, err = run(content, "-s", style, "-o", out)
    assert code == 1 and "exists (pass --overwrite" in err and len(err.strip().splitlines()) == 1
    assert Image.open(out).size == (5, 5)
    assert run(content, "-s", style, "-o", out, "--overwrite", "--content-size", 0)[0] == 0
    assert Image.open(out).size == (70, 50)


def _bad_files(tmp_path):
    good = make_image(tmp_path / "good.jpg", (120, 120))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:300])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello")
    (tmp_path / "random.bin").write_bytes(bytes(range(256)) * 4)
    return {
        "missing": (tmp_path / "missing.jpg", "no such file"),
        "empty": (tmp_path / "empty.png", "empty file"),
        "text": (tmp_path / "text.jpg", "not an image"),
        "binary": (tmp_path / "random.bin", "not an image"),
        "truncated": (truncated, "corrupt or truncated"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "text", "binary", "truncated"])
@pytest.mark.parametrize("role", ["content", "style"])
def test_bad_input_files(run, tmp_path, pair, case, role):
    content, style = pair
    bad, message = _bad_files(tmp_path)[case]
    out = tmp_path / "out.jpg"
    args = (bad, "-s", style) if role == "content" else (content, "-s", bad)
    code, err = run(*args, "-o", out)
    assert code != 0
    assert message in err and "Traceback" not in err
    assert all(line.startswith("adain:") for line in err.strip().splitlines())
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no temp file left


def test_batch_skips_bad_files_and_exits_non_zero(run, tmp_path, pair):
    content, style = pair
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    code, err = run(content, bad, "-s", style, "-o", tmp_path / "out", "--content-size", 0)
    assert code == 1
    assert "broken.jpg" in err and "wrote 1 image" in err and "1 failed" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["photo_stylized_art.jpg"]


def test_decompression_bomb_and_override(run, tmp_path, pair):
    content, style = pair
    code, err = run(content, "-s", style, "-o", tmp_path / "o.jpg", "--max-pixels", 1000)
    assert code == 1 and "over the limit" in err and "--max-pixels" in err
    args = ("-o", tmp_path / "o.jpg", "--max-pixels", 5000, "--content-size", 0)
    code, err = run(content, "-s", style, *args)  # the style would be resized to 512 px: over the limit too
    assert code == 1 and "resizing to 512 px would make a 512x512 image" in err
    code, err = run(content, "-s", style, *args, "--style-size", 0)
    assert code == 0, err


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--alpha", "1.5"], "must be between 0 and 1"),
        (["--alpha", "x"], "expected a number"),
        (["--style-weights", "1,2"], "2 style weights given for 1 styles"),
        (["--style-weights", "a,b"], "comma-separated numbers"),
        (["--content-size", "-5"], "must be 0 or more"),
        (["--ext", "gif"], "invalid choice"),
        (["--tile", "5"], "tile size must be between 64 and 16384"),
        (["--tile", "999999"], "tile size must be between 64 and 16384"),
        (["--max-memory", "0"], "must be more than 0"),
        (["--max-memory", "1", "--content-size", "0"], "is too small for a"),
    ],
)
def test_bad_flags(tmp_path, pair, extra, message, capsys, decoder_file):
    content, style = pair
    code = exit_status(stylize_argv(content, style, tmp_path / "o.jpg", decoder_file, *extra))
    err = capsys.readouterr().err
    assert code != 0 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err  # the message, not argparse's usage block above it
    assert not (tmp_path / "o.jpg").exists()


def test_bad_flag_messages(tmp_path, pair, decoder_file):
    content, style = pair
    for extra, message in [
        (["--style-weights", "1,2"], "2 style weights given for 1 styles"),
        (["--mask", str(content)], "exactly two styles"),
        (["-o", str(tmp_path / "o.xyz")], "cannot tell the output format"),
    ]:
        argv = ["stylize", str(content), "-s", str(style), "--decoder", str(decoder_file)]
        if "-o" not in extra:
            argv += ["-o", str(tmp_path / "o.jpg")]
        result = subprocess.run(
            [sys.executable, "-m", "adain", *argv, *extra], capture_output=True, text=True
        )
        assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_no_decoder_says_how_to_get_one(tmp_path, pair, monkeypatch, capsys):
    from adain import weights

    monkeypatch.setattr(weights, "packaged_decoder_path", lambda: None)
    content, style = pair
    assert main(["stylize", str(content), "-s", str(style), "-o", str(tmp_path / "o.jpg")]) == 1
    err = capsys.readouterr().err
    assert "--decoder PATH" in err and "ADAIN_DECODER" in err and "adain train" in err


def test_bad_decoder_file_is_one_line(run, tmp_path, pair, capsys):
    content, style = pair
    bad = tmp_path / "decoder.pth"
    bad.write_bytes(b"nope")
    code = main(
        ["stylize", str(content), "-s", str(style), "-o", str(tmp_path / "o.jpg"), "--decoder", str(bad)]
    )
    err = capsys.readouterr().err
    assert code == 1 and "cannot read weights file" in err and len(err.strip().splitlines()) == 1


def test_version_and_module_entry():
    result = subprocess.run([sys.executable, "-m", "adain", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"adain {__version__}"


def test_no_command_lists_the_commands_and_a_wrong_one_is_one_line(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert all(name in err for name in ("stylize", "train", "eval", "video", "serve", "dataset", "export"))
    with pytest.raises(SystemExit) as exit:
        main(["stylze"])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.count("\n") == 1 and "invalid choice: 'stylze'" in err
    assert "see adain --help" in err


def test_output_pixels_match_api(run, tmp_path, pair, stylizer):
    content, style = pair
    out = tmp_path / "o.png"
    assert run(content, "-s", style, "-o", out, "--content-size", 0, "--style-size", 0)[0] == 0
    assert open_rgb(out).size == (70, 50)


def test_plain_pipeline_flag_gives_the_same_image(run, tmp_path, pair):
    """In fp32 the fast path differs from the plain one by rounding only; bf16 stays within 40 dB."""
    content, style = pair
    fast, bf16, plain = tmp_path / "fast.png", tmp_path / "bf16.png", tmp_path / "plain.png"
    assert run(content, "-s", style, "-o", fast, "--precision", "fp32")[0] == 0
    assert run(content, "-s", style, "-o", bf16, "--precision", "bf16")[0] == 0
    assert run(content, "-s", style, "-o", plain, "--plain")[0] == 0
    reference = np.asarray(open_rgb(plain), float)
    assert np.abs(np.asarray(open_rgb(fast), float) - reference).max() <= 1
    mse = np.mean((np.asarray(open_rgb(bf16), float) - reference) ** 2)
    assert mse == 0 or 10 * np.log10(255**2 / mse) >= 40


def test_eval_end_to_end_writes_well_formed_reports(tmp_path, decoder_file, capsys):
    import json

    content_dir, style_dir = tmp_path / "c", tmp_path / "s"
    content_dir.mkdir()
    style_dir.mkdir()
    for i in range(2):
        make_image(content_dir / f"c{i}.png", (40, 40), seed=i)
        make_image(style_dir / f"s{i}.png", (40, 40), seed=5 + i)
    out = tmp_path / "eval"
    argv = ["eval", "--content-dir", str(content_dir), "--style-dir", str(style_dir), "--out", str(out),
            "--size", "32", "--decoder", str(decoder_file), "-q"]  # fmt: skip
    if SHARED_VGG.is_file():
        argv += ["--vgg", str(SHARED_VGG)]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    methods = summary["methods"]
    assert set(methods) == {"adain", "content", "style"} and summary["size"] == 32
    assert all(m["n_pairs"] == 4 for m in methods.values())
    assert methods["content"]["content_loss"] == 0 and methods["content"]["style_loss"] > 0
    assert methods["style"]["style_loss"] == 0 and methods["style"]["content_loss"] > 0
    assert methods["adain"]["content_loss"] > 0 and methods["adain"]["style_loss"] > 0
    assert len((out / "pairs.csv").read_text().strip().splitlines()) == 1 + 12
    # the style loss's eight terms (relu1_1..relu4_1, means and stds) are kept and sum to it
    with open(out / "pairs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    terms = [name for name in rows[0] if name.startswith("style_relu")]
    assert terms[:2] == ["style_relu1_1_mean", "style_relu1_1_std"] and len(terms) == 8
    for row in rows:
        assert sum(float(row[t]) for t in terms) == pytest.approx(
            float(row["style_loss"]), rel=1e-5, abs=1e-9
        )
    assert any(float(row["style_relu1_1_mean"]) > 0 for row in rows if row["method"] == "adain")
    assert methods["adain"]["style_terms"]["style_relu4_1_std"] == pytest.approx(
        sum(float(r["style_relu4_1_std"]) for r in rows if r["method"] == "adain") / 4
    )
    # an unreadable image is left out with a warning; the pair counts say what was measured
    (style_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    again = tmp_path / "eval2"
    argv[argv.index(str(out))] = str(again)
    with pytest.warns(UserWarning, match="skipping unreadable style image: .*broken.png"):
        assert main(argv) == 0
    assert all(
        m["n_pairs"] == 4 for m in json.loads((again / "summary.json").read_text())["methods"].values()
    )
    assert (
        main(argv) == 2 and "holds an earlier evaluation (pairs.csv, summary.json" in capsys.readouterr().err
    )
    argv.append("--overwrite")
    for name in ("s0.png", "s1.png"):
        (style_dir / name).unlink()
    with pytest.warns(UserWarning, match="skipping unreadable style image"):
        assert main(argv) == 1
    assert "none of the 1 style images could be read" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    argv[argv.index(str(style_dir))] = str(empty)
    assert main(argv) == 1 and "no style images" in capsys.readouterr().err


def test_decoder_trained_with_another_encoder_warns(tmp_path, pair, decoder_file):
    from adain.nets import Decoder
    from adain.stylize import Stylizer
    from adain.weights import export_decoder

    path = export_decoder(Decoder(), tmp_path / "d.safetensors", {"encoder": "file:other_vgg.pth"})
    with pytest.warns(UserWarning, match="trained with encoder file:other_vgg.pth"):
        Stylizer.from_pretrained(SHARED_VGG if SHARED_VGG.is_file() else None, path, "cpu")


def test_bench_end_to_end_writes_json(tmp_path, decoder_file, capsys):
    import json

    out = tmp_path / "bench.json"
    argv = [
        "bench",
        "--sizes",
        "32,48",
        "--runs",
        "2",
        "--warmup",
        "0",
        "--decoder",
        str(decoder_file),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert [r["size"] for r in result["results"]] == [32, 48]
    for row in result["results"]:
        for case in ("excluding_style", "including_style"):
            cell = row[case]
            assert cell["runs"] == 2 and 0 < cell["min_ms"] <= cell["median_ms"] <= cell["max_ms"]
    assert "including style" in capsys.readouterr().out
    assert result["decoder_match"] == 0  # a plain decoder: the paper's one pass
    before = out.read_text()
    assert main(argv) == 2 and "exists: pass --overwrite" in capsys.readouterr().err
    assert out.read_text() == before
    assert main([*argv, "--overwrite", "--decoder-match", "0.5"]) == 0
    matched = json.loads(out.read_text())
    assert (matched["decoder_match"], matched["decoder_match_layers"]) == (0.5, [0, 6])
    assert "decoder match 0.5 at ReLUs 0,6" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["bench", "--sizes", "1,2"])


def test_help_loads_no_heavy_module():
    """``adain --help`` stays fast: the command modules import the library only when they run."""
    code = "import sys, adain.cli; adain.cli.build_parser(); print(sorted(m for m in ('torch', 'numpy', 'PIL', 'numba') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_two_inputs_that_would_write_one_file_are_refused_before_any_work(tmp_path, capsys, decoder_file):
    photos = tmp_path / "photos"
    photos.mkdir()
    make_image(photos / "a.jpg", (40, 32), seed=1)
    make_image(photos / "a.png", (40, 32), seed=2)
    style = make_image(tmp_path / "s.png", (32, 32), seed=3)
    out = tmp_path / "out"
    assert main(["stylize", str(photos), "-s", str(style), "-o", str(out), "--decoder", str(decoder_file),
                 "--overwrite", "-q"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "a.jpg" in err and "a.png" in err and "would both be written to" in err
    assert not out.exists()
