"""A decoder trained with the decoder match on (``adain train --decoder-match``) records it, and every
way of loading it paints with it unless told otherwise."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from adain import weights
from adain.cli import main
from adain.errors import AdainError, WeightsError
from adain.nets import Decoder
from adain.stylize import Stylizer

from .conftest import SHARED_VGG, make_image

VGG = SHARED_VGG if SHARED_VGG.is_file() else None


@pytest.fixture
def trained_with_match(tmp_path, decoder_file):
    """``decoder_file``'s weights as a decoder trained with the match on at share 0.5, ReLUs 0 and 5."""
    decoder = weights.decoder_from_file(decoder_file)
    path = tmp_path / "matched.safetensors"
    return weights.export_decoder(decoder, path, weights.decoder_match_meta(0.5, (0, 5)))


def test_the_decoder_records_its_match_and_a_stylizer_paints_with_it(
    tmp_path, decoder_file, trained_with_match
):
    found = weights.DecoderWeights.read(trained_with_match)
    assert (found.decoder_match, found.decoder_match_layers) == (0.5, (0, 5))
    assert (
        weights.DecoderWeights.read(decoder_file).decoder_match == 0
    )  # a plain decoder: the paper's pipeline
    own = Stylizer.from_pretrained(VGG, trained_with_match, "cpu", precision="fp32")
    assert (own.options.decoder_match, own.options.decoder_match_layers) == (0.5, (0, 5))
    told = Stylizer.from_pretrained(VGG, trained_with_match, "cpu", precision="fp32", decoder_match=0)
    plain = Stylizer.from_pretrained(VGG, decoder_file, "cpu", precision="fp32")
    by_hand = plain.with_options(decoder_match=0.5, decoder_match_layers=(0, 5))
    content = make_image(tmp_path / "c.png", (48, 40), seed=1)
    style = make_image(tmp_path / "s.png", (40, 40), seed=2)
    image = np.asarray(own(content, style))
    assert np.array_equal(image, np.asarray(by_hand(content, style)))
    assert np.array_equal(np.asarray(told(content, style)), np.asarray(plain(content, style)))
    assert not np.array_equal(image, np.asarray(plain(content, style)))


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"decoder_match": "lots", "decoder_match_layers": "0,6"}, "bad decoder match 'lots'"),
        ({"decoder_match": "0.5", "decoder_match_layers": "0,9"}, "the decoder's ReLUs, 0 to 7"),
        ({"decoder_match": "1.5", "decoder_match_layers": "0"}, "at most 1"),
    ],
)
def test_a_bad_match_in_the_metadata_is_one_line(tmp_path, meta, message):
    path = tmp_path / "odd.safetensors"
    save_file(Decoder().state_dict(), str(path), metadata={"format": "adain-decoder", **meta})
    with pytest.raises(WeightsError, match=message):
        weights.load_decoder(path)


def test_the_commands_follow_the_decoders_match(tmp_path, decoder_file, trained_with_match):
    content = make_image(tmp_path / "c.png", (48, 40), seed=1)
    style = make_image(tmp_path / "s.png", (40, 40), seed=2)
    vgg = ["--vgg", str(SHARED_VGG)] if VGG else []

    def stylized(name: str, decoder, *flags: str) -> list:
        out = tmp_path / f"{name}.png"
        argv = ["stylize", str(content), "-s", str(style), "-o", str(out), "--decoder", str(decoder)]
        assert main([*argv, "--precision", "fp32", "--device", "cpu", *vgg, *flags]) == 0
        return np.asarray(Image.open(out)).tolist()  # the pixels: the file's metadata names the decoder

    own = stylized("own", trained_with_match)
    assert own == stylized("asked", decoder_file, "--decoder-match", "0.5", "--decoder-match-layers", "0,5")
    assert stylized("off", trained_with_match, "--decoder-match", "0") == stylized("plain", decoder_file)
    # the evaluation says what it measured
    folders = tmp_path / "c", tmp_path / "s"
    for folder, image in zip(folders, (content, style), strict=True):
        folder.mkdir()
        image.rename(folder / image.name)
    out = tmp_path / "eval"
    argv = ["eval", "--content-dir", str(folders[0]), "--style-dir", str(folders[1]), "--out", str(out),
            "--size", "64", "--method", "adain", "--decoder", str(trained_with_match), "-q", *vgg]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["decoder_match"] == 0.5 and summary["decoder_match_layers"] == [0, 5]


def test_the_server_and_the_export_follow_the_decoders_match(tmp_path, trained_with_match):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from adain.export import export_onnx
    from adain.serve import ServeConfig, create_app

    from .test_serve import png_bytes

    stylizer = Stylizer.from_pretrained(VGG, trained_with_match, "cpu", precision="fp32")
    client = TestClient(create_app(ServeConfig(), stylizer=stylizer))
    assert client.get("/web.json").json()["decoder_match"] == 0.5  # the page's textures box starts ticked

    def post(**fields: str) -> bytes:
        files = [("content", ("c.png", png_bytes((48, 40), 1, tmp_path), "image/png")),
                 ("style", ("s.png", png_bytes((40, 40), 2, tmp_path), "image/png"))]  # fmt: skip
        reply = client.post("/v1/stylize", data={"format": "png", "content_size": "0", **fields}, files=files)
        assert reply.status_code == 200
        return reply.content

    default = post()
    assert default == post(decoder_match="0.5") and default != post(decoder_match="0")
    pytest.importorskip("onnx")
    out = export_onnx(tmp_path / "onnx", VGG, trained_with_match)
    match = json.loads((out / "adain.json").read_text())["decoder_match"]
    assert match["layers"] == [0, 5] and match["default_share"] == 0.5


SET_MATCH = Path(__file__).resolve().parents[1] / "scripts" / "set_decoder_match.py"


def test_a_match_chosen_after_training_keeps_the_weights_and_the_metadata(tmp_path, decoder_file):
    """``scripts/set_decoder_match.py``: how the shipped decoder got its match (stage 11)."""
    plain = weights.export_decoder(
        weights.decoder_from_file(decoder_file),
        tmp_path / "plain.safetensors",
        {"iterations": "7"},
        half=True,
    )
    out = tmp_path / "set.safetensors"
    done = subprocess.run(
        [sys.executable, SET_MATCH, plain, "--share", "0.65", "--out", out], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    found = weights.DecoderWeights.read(out)
    assert (found.decoder_match, found.decoder_match_layers, found.iterations) == (0.65, (0, 6), 7)
    before, after = weights.read_state_dict(plain), weights.read_state_dict(out)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) and before[k].dtype == after[k].dtype for k in before)
    stylizer = Stylizer.from_pretrained(VGG, out, "cpu", precision="fp32")
    assert (stylizer.options.decoder_match, stylizer.options.decoder_match_layers) == (0.65, (0, 6))

    again = subprocess.run(
        [sys.executable, SET_MATCH, plain, "--share", "0.65", "--out", out], capture_output=True, text=True
    )
    assert again.returncode != 0 and "exists" in again.stderr and "Traceback" not in again.stderr
    removed = weights.set_decoder_match(out, tmp_path / "none.safetensors", 0)
    assert weights.DecoderWeights.read(removed).decoder_match == 0
    with pytest.raises(AdainError, match="from 0 to 1"):
        weights.set_decoder_match(out, tmp_path / "x.safetensors", 1.5)
    with pytest.raises(AdainError, match="ReLUs, 0 to 7"):
        weights.set_decoder_match(out, tmp_path / "x.safetensors", 0.5, (8,))
    with pytest.raises(WeightsError, match="carries metadata"):
        weights.set_decoder_match(out, tmp_path / "x.pth", 0.5)
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "x.pth").exists()


def test_a_dataset_records_the_decoders_match_and_refuses_to_mix_pipelines(
    tmp_path, decoder_file, trained_with_match, capsys, monkeypatch
):
    """A dataset begun with one pipeline is not finished with another: the decoder's own match is
    written into ``dataset.json``, so the same command resumed after the default decoder changed
    its pipeline (as the shipped one did in session 49) is refused instead of mixing the two."""
    src, styles = tmp_path / "src", tmp_path / "styles"
    src.mkdir()
    styles.mkdir()
    make_image(src / "a.png", (40, 32), seed=1)
    make_image(styles / "s.png", (32, 32), seed=2)
    out = tmp_path / "out"
    vgg = ["--vgg", str(SHARED_VGG)] if VGG else []

    def dataset(*flags: str) -> int:  # the default decoder, as $ADAIN_DECODER says
        argv = ["dataset", str(src), "--styles", str(styles), "-o", str(out), "--style-size", "32"]
        return main([*argv, "--device", "cpu", "-q", *vgg, *flags])

    monkeypatch.setenv("ADAIN_DECODER", str(decoder_file))
    assert dataset() == 0
    assert "decoder_match" not in json.loads((out / "dataset.json").read_text())["weights"]
    monkeypatch.setenv("ADAIN_DECODER", str(trained_with_match))
    capsys.readouterr()
    assert dataset() == 2 and "another configuration" in capsys.readouterr().err
    assert dataset("--overwrite") == 0
    recorded = json.loads((out / "dataset.json").read_text())["weights"]
    assert (recorded["decoder_match"], recorded["decoder_match_layers"]) == (0.5, [0, 5])
    assert dataset() == 0  # the same again resumes
    assert dataset("--decoder-match", "0") == 2  # the paper's pipeline is another configuration
