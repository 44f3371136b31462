"""scripts/style_channels.py predict: how much of each tap's style statistics relu4_1's foretell."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "style_channels.py"


def test_predict_tells_known_statistics_from_unknowable_ones(tmp_path):
    generator = torch.Generator().manual_seed(0)
    styles, crops = 800, 4  # more crops than the 1,024 numbers relu4_1 gives
    mean = torch.rand(styles, crops, 960, generator=generator)
    std = torch.rand(styles, crops, 960, generator=generator)
    # relu1_1's means a linear function of relu4_1's (the last 512): knowable to AdaIN's decoder;
    # relu2_1's (64:192) stay independent noise: unknowable
    mixing = torch.randn(512, 64, generator=generator) / 512**0.5
    mean[..., :64] = mean[..., 448:] @ mixing
    cache = tmp_path / "style-test.safetensors"
    save_file({"mean": mean, "std": std}, str(cache))
    done = subprocess.run(
        [sys.executable, SCRIPT, "--style-cache", cache, "predict", "--ridge", "1", "--steps", "5"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ridge = next(line for line in done.stdout.splitlines() if line.strip().startswith("ridge 1:"))
    r2 = {tap: float(value) for tap, value in re.findall(r"(relu\d_1 (?:mean|std)) (-?[\d.]+)", ridge)}
    assert len(r2) == 8
    assert r2["relu1_1 mean"] > 0.95
    assert r2["relu2_1 mean"] < 0.1
    assert r2["relu4_1 mean"] > 0.95  # what the decoder is given is known to it


def test_predict_needs_a_style_cache():
    done = subprocess.run([sys.executable, SCRIPT, "predict"], capture_output=True, text=True)
    assert done.returncode == 2 and "predict needs --style-cache" in done.stderr


def test_clamp_counts_the_pixels_outside_and_the_clamps_cost(tmp_path):
    from adain import weights
    from adain.nets import Decoder

    for folder, colour in (("content", (200, 40, 40)), ("style", (20, 90, 220))):
        (tmp_path / folder).mkdir()
        pixels = torch.randint(
            0, 256, (48, 48, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
        )
        Image.fromarray(((pixels.int() + torch.tensor(colour)) // 2).byte().numpy()).save(
            tmp_path / folder / "a.png"
        )
    shipped = weights.DecoderWeights.read(Path(weights.__file__).parent / "decoder.safetensors")
    decoder = Decoder()
    decoder.load_state_dict(weights.load_decoder_state(shipped.source))
    with torch.no_grad():
        decoder[-1].bias += 5  # every pixel above 1: the saved image is white
    bright = tmp_path / "bright.safetensors"
    weights.export_decoder(decoder, bright, dict(shipped.metadata))
    done = subprocess.run(
        [sys.executable, SCRIPT, "--size", "64", "clamp", tmp_path / "content", tmp_path / "style", bright],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "100.0% of the pixels outside [0, 1]" in done.stdout
    raw, clamped = (
        float(re.search(rf"{name}: ([\d.]+)", done.stdout).group(1)) for name in ("raw", "clamped")
    )
    assert raw != clamped


def noise_folders(root: Path, **seeds: tuple[int, ...]) -> None:
    """A folder under ``root`` per keyword, holding a 64 px noise image per seed."""
    for folder, numbers in seeds.items():
        (root / folder).mkdir()
        for seed in numbers:
            pixels = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(seed))
            Image.fromarray((pixels.permute(1, 2, 0) * 255).byte().numpy()).save(
                root / folder / f"{seed}.png"
            )


def on_noise(root: Path, mode: str, *flags: str, contents: tuple[int, ...] = (1,)) -> str:
    """The script's ``mode`` at 64 px on noise folders under ``root`` (``contents`` seeds, one
    style) with the shipped decoder: its output, after checking it exited cleanly."""
    noise_folders(root, content=contents, style=(3,))
    decoder = Path(__file__).resolve().parents[1] / "src" / "adain" / "decoder.safetensors"
    done = subprocess.run(
        [sys.executable, SCRIPT, "--size", "64", mode, root / "content", root / "style", decoder, *flags],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_feedback_reports_the_plain_pipeline_as_adain_eval_measures_it(tmp_path):
    import json

    stdout = on_noise(tmp_path, "feedback", "--settings", "0:1", "1:0.9", contents=(1, 2))
    assert re.search(r"relu4_1 means: output on target slope median -?[\d.]+; the line explains", stdout)
    plain = re.search(r"eta 0 alpha 1: content ([\d.]+) style ([\d.]+)", stdout)
    fed = re.search(r"eta 1 alpha 0.9: content ([\d.]+) style ([\d.]+)", stdout)
    assert plain and fed and plain.groups() != fed.groups()
    from adain.cli import main

    out = tmp_path / "eval"
    # the scripts measure the paper's pipeline, whatever match the decoder records
    argv = ["eval", "--content-dir", str(tmp_path / "content"), "--style-dir", str(tmp_path / "style"),
            "--out", str(out), "--size", "64", "--method", "adain", "--precision", "fp32", "-q",
            "--decoder-match", "0"]  # fmt: skip
    for extra, found in (([], plain), (["--feedback", "1", "--alpha", "0.9", "--overwrite"], fed)):
        assert main([*argv, *extra]) == 0
        adain = json.loads((out / "summary.json").read_text())["methods"]["adain"]
        assert float(found.group(1)) == pytest.approx(adain["content_loss"], abs=2e-3)
        assert float(found.group(2)) == pytest.approx(adain["style_loss"], abs=2e-3)


def test_energy_relates_each_styles_loss_to_its_energy_and_links_the_boldest(tmp_path):
    styles = tmp_path / "styles"
    styles.mkdir()
    generator = torch.Generator().manual_seed(2)
    rows = ["method,content,style,content_loss,style_loss"]
    for i, contrast in enumerate((20, 80, 160)):  # busier images, stronger relu2_1 responses
        noise = torch.randint(0, contrast, (64, 64, 3), dtype=torch.uint8, generator=generator)
        Image.fromarray((noise + (255 - contrast) // 2).byte().numpy()).save(styles / f"s{i}.png")
        rows += [f"adain,c{j}.jpg,s{i}.png,1.0,{0.5 * (i + 1) + 0.1 * j}" for j in range(2)]
    rows.append("content,c0.jpg,s0.png,0.0,9.0")  # other methods' rows are not the decoder's
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("\n".join(rows) + "\n")
    # four training styles, the third the most energetic; the cache's rows are the links' images
    mean = torch.ones(4, 2, 960)
    mean[2] *= 3
    cache = tmp_path / "style-test.safetensors"
    save_file({"mean": mean, "std": mean.clone()}, str(cache))
    links = tmp_path / "links" / "train512"
    links.mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (8, 8)).save(links / f"t{i}.png")
    command = [sys.executable, SCRIPT, "--size", "64", "--style-cache", cache, "energy", pairs, styles]
    done = subprocess.run(
        [*command, "--boldest", "1", "--links", links.parent, "--only", "train512", "--into", tmp_path / "bold"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    losses = {m[0]: float(m[1]) for m in re.findall(r"^(s\d\.png)\s+([\d.]+)", done.stdout, re.M)}
    assert losses == pytest.approx({"s0.png": 0.55, "s1.png": 1.05, "s2.png": 1.55})
    energies = [float(m) for m in re.findall(r"^s\d\.png\s+[\d.]+\s+([\d.]+)", done.stdout, re.M)]
    assert energies == sorted(energies) and energies[0] < energies[-1]
    assert float(re.search(r"over 3 styles: (-?[\d.]+)", done.stdout).group(1)) > 0.9
    # one of four training styles is the top tenth: its energy 9 against 1, so 3 / 6, 9 / 12, 81 / 84
    assert "share of the draws with --bold-styles B: 50% at 0.5, 75% at 1, 96% at 2" in done.stdout
    assert [p.name for p in (tmp_path / "bold").iterdir()] == ["t2.png"]
    assert (tmp_path / "bold" / "t2.png").resolve() == (links / "t2.png").resolve()
    refused = subprocess.run([*command, "--boldest", "1"], capture_output=True, text=True)
    assert refused.returncode == 2 and "--boldest needs --links and --into" in refused.stderr


def test_sharpen_measures_each_unsharp_mask_beside_the_clamped_output(tmp_path):
    stdout = on_noise(tmp_path, "sharpen", "--amounts", "0", "1", "--sigmas", "1")
    found = dict(re.findall(r"^  (.+?): [\d.]+ \(.*\), content ([\d.]+)$", stdout, re.M))
    assert set(found) == {"clamped", "unsharp 0 sigma 1", "unsharp 1 sigma 1"}
    assert found["unsharp 0 sigma 1"] == found["clamped"]  # no amount: the saved image itself
    assert found["unsharp 1 sigma 1"] != found["clamped"]


def test_polish_reports_what_adain_eval_measures_with_the_same_steps(tmp_path):
    import json

    stdout = on_noise(
        tmp_path, "polish", "--steps", "2", "--style-weights", "10", "1", "--arithmetic", "fp32", "bf16"
    )
    number = r"\s+([\d.]+)"
    found = re.findall(rf"^{number}{number}\s+(fp32|bf16)\s+(\d+){number * 5}$", stdout, re.M)
    by_setting = {(float(m[0]), m[2], int(m[3])): [float(v) for v in m[4:]] for m in found}
    # the plain pass once
    assert set(by_setting) == {
        (10, "fp32", 0),
        (10, "fp32", 2),
        (10, "bf16", 2),
        (1, "fp32", 2),
        (1, "bf16", 2),
    }
    for weight in (10, 1):  # bf16 steps land near the fp32 ones, measured in fp32
        low, full = by_setting[weight, "bf16", 2], by_setting[weight, "fp32", 2]
        assert low[:2] == pytest.approx(full[:2], rel=0.05)
    by_setting = {
        (weight, steps): row
        for (weight, arithmetic, steps), row in by_setting.items()
        if arithmetic == "fp32"
    }
    rows = {steps: by_setting[10, steps] for steps in (0, 2)}
    assert rows[0][3] == 0 and rows[2][3] > 0  # the pixels moved
    assert rows[2][2] != rows[0][2]  # and the Gram loss with them
    # a lower style weight trades less of the content for the style
    assert by_setting[1, 2][0] < rows[2][0] and by_setting[1, 2][1] > rows[2][1]
    from adain.cli import main

    out = tmp_path / "eval"
    # the scripts measure the paper's pipeline, whatever match the decoder records
    argv = ["eval", "--content-dir", str(tmp_path / "content"), "--style-dir", str(tmp_path / "style"),
            "--out", str(out), "--size", "64", "--method", "adain", "--precision", "fp32", "-q",
            "--decoder-match", "0"]  # fmt: skip
    for extra, steps in (([], 0), (["--polish", "2", "--polish-style-weight", "10", "--overwrite"], 2)):
        assert main([*argv, *extra]) == 0
        adain = json.loads((out / "summary.json").read_text())["methods"]["adain"]
        assert rows[steps][0] == pytest.approx(adain["content_loss"], abs=2e-3)
        assert rows[steps][1] == pytest.approx(adain["style_loss"], abs=2e-3)
