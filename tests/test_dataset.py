import csv

import numpy as np
import pytest
import torch
from PIL import Image

from adain.cli import main

from .conftest import SHARED_VGG, make_image


@pytest.fixture
def tree(tmp_path):
    src, styles = tmp_path / "src", tmp_path / "styles"
    for label in ("cat", "dog"):
        (src / label).mkdir(parents=True)
        for i in range(3):
            make_image(src / label / f"{label}{i}.jpg", (40 + 8 * i, 32), seed=10 * len(label) + i)
    styles.mkdir()
    for i in range(3):
        make_image(styles / f"art{i}.png", (32, 32), seed=100 + i)
    return src, styles


def dataset_args(tree, out, decoder_file, *extra):
    src, styles = tree
    args = [
        "dataset",
        src,
        "--styles",
        styles,
        "-o",
        out,
        "--decoder",
        decoder_file,
        "--style-size",
        32,
        "-q",
    ]
    if SHARED_VGG.is_file():
        args += ["--vgg", SHARED_VGG]
    return [str(a) for a in [*args, *extra]]


def manifest(out):
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_mirrors_the_tree_and_records_every_output(tree, tmp_path, decoder_file):
    out = tmp_path / "out"
    assert main(dataset_args(tree, out, decoder_file, "--per-content", 2, "--alpha", "0.5:1")) == 0
    rows = manifest(out)
    assert len(rows) == 12 and {r["status"] for r in rows} == {"ok"}
    assert sorted(r["output"] for r in rows)[:2] == ["cat/cat0_0.jpg", "cat/cat0_1.jpg"]
    for row in rows:
        assert 0.5 <= float(row["alpha"]) <= 1 and row["style"].startswith("art")
        source = Image.open(tree[0] / row["source"])
        assert Image.open(out / row["output"]).size == source.size  # --content-size 0 keeps it


def test_resumes_where_it_stopped_with_the_same_choices(tree, tmp_path, decoder_file):
    out = tmp_path / "out"
    assert main(dataset_args(tree, out, decoder_file, "--seed", 3)) == 0
    first = manifest(out)
    kept = np.asarray(Image.open(out / first[0]["output"]))
    # a run killed after two outputs: the rest of its manifest and files are missing
    lines = (out / "manifest.csv").read_text().splitlines(keepends=True)
    (out / "manifest.csv").write_text("".join(lines[:3]))
    for row in first[2:]:
        (out / row["output"]).unlink()
    assert main(dataset_args(tree, out, decoder_file, "--seed", 3)) == 0
    again = manifest(out)
    assert sorted(map(tuple, (r.values() for r in again))) == sorted(map(tuple, (r.values() for r in first)))
    assert (np.asarray(Image.open(out / first[0]["output"])) == kept).all()  # not redone


def test_feedback_is_recorded_and_a_run_without_it_is_not_resumed_with_it(
    tree, tmp_path, decoder_file, capsys
):
    import json

    plain, fed = tmp_path / "plain", tmp_path / "fed"
    assert main(dataset_args(tree, plain, decoder_file, "--ext", "png")) == 0
    assert "feedback" not in json.loads((plain / "dataset.json").read_text())["weights"]
    assert main(dataset_args(tree, fed, decoder_file, "--ext", "png", "--feedback", "1")) == 0
    assert json.loads((fed / "dataset.json").read_text())["weights"]["feedback"] == 1.0
    row = manifest(plain)[0]
    assert (
        np.asarray(Image.open(plain / row["output"])) != np.asarray(Image.open(fed / row["output"]))
    ).any()
    assert main(dataset_args(tree, plain, decoder_file, "--ext", "png", "--feedback", "1")) == 2
    assert "another configuration" in capsys.readouterr().err
    previewed = tmp_path / "previewed"
    argv = dataset_args(
        tree, previewed, decoder_file, "--ext", "png", "--feedback", "1", "--feedback-preview", 0.5
    )
    assert main(argv) == 0
    assert json.loads((previewed / "dataset.json").read_text())["weights"]["feedback_preview"] == 0.5
    assert "feedback_preview" not in json.loads((fed / "dataset.json").read_text())["weights"]


def test_polish_is_recorded_and_takes_its_steps_from_styles_encoded_once(
    tree, tmp_path, decoder_file, monkeypatch
):
    import json

    import adain.stylize

    plain, polished = tmp_path / "plain", tmp_path / "polished"
    assert main(dataset_args(tree, plain, decoder_file, "--ext", "png")) == 0
    measured = []  # style images measured at four taps: each once, by the parent, not once per image
    real = adain.stylize.Stylizer._polish_codes

    def counting(self, styles, *args):
        measured.append(sum(not isinstance(s, adain.stylize.StyleCode) for s in styles))
        return real(self, styles, *args)

    monkeypatch.setattr(adain.stylize.Stylizer, "_polish_codes", counting)
    argv = dataset_args(tree, polished, decoder_file, "--ext", "png", "--polish", 2, "--max-memory", 3000)
    assert main(argv) == 0
    recorded = json.loads((polished / "dataset.json").read_text())["weights"]
    assert recorded["polish"] == 2 and recorded["max_memory_mb"] == 3000
    assert "polish" not in json.loads((plain / "dataset.json").read_text())["weights"]
    rows = manifest(polished)
    assert {r["status"] for r in rows} == {"ok"} and sum(measured) == len({r["style"] for r in rows})
    a, b = (np.asarray(Image.open(out / rows[0]["output"]), dtype=np.int16) for out in (plain, polished))
    assert a.shape == b.shape and 0 < np.abs(a - b).mean() < 40
    # a budget too small for any polish: each image fails with the reason, none is written
    tight = tmp_path / "tight"
    assert main(dataset_args(tree, tight, decoder_file, "--polish", 1, "--max-memory", 300)) == 1
    assert all("memory budget" in r["status"] for r in manifest(tight))


def test_two_workers_make_the_same_choices_and_images(tree, tmp_path, decoder_file):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(dataset_args(tree, one, decoder_file, "--seed", 5, "--ext", "png")) == 0
    assert main(dataset_args(tree, two, decoder_file, "--seed", 5, "--ext", "png", "--workers", 2)) == 0
    key = lambda rows: sorted((r["source"], r["style"], r["alpha"], r["seed"], r["output"]) for r in rows)  # noqa: E731
    assert key(manifest(one)) == key(manifest(two))
    for row in manifest(one):
        a = np.asarray(Image.open(one / row["output"])).astype(int)
        b = np.asarray(Image.open(two / row["output"])).astype(int)
        assert np.abs(a - b).max() <= 1  # one thread a worker against two: float rounding at most


def test_bad_inputs(tree, tmp_path, decoder_file, capsys):
    src, styles = tree
    (src / "cat" / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "out"
    assert main(dataset_args(tree, out, decoder_file)) == 1  # one failure, the rest written
    rows = manifest(out)
    assert sum(r["status"] == "ok" for r in rows) == 6
    assert [r["status"].startswith("error:") for r in rows if r["source"] == "cat/broken.jpg"] == [True]
    with pytest.raises(SystemExit):  # argparse: a backwards range
        main(dataset_args(tree, out, decoder_file, "--alpha", "1:0.5"))
    capsys.readouterr()
    assert main(dataset_args(tree, out, decoder_file, "--seed", 9)) == 2  # another configuration
    assert "--overwrite" in capsys.readouterr().err
    assert main(dataset_args(tree, src / "inside", decoder_file)) == 2
    assert "inside the source tree" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    args = dataset_args((src, empty), tmp_path / "o2", decoder_file)
    assert main(args) == 1 and "no style images" in capsys.readouterr().err


def test_style_augment_probability_determinism_and_pickling(tree, decoder_file):
    import pickle

    import torch

    from adain import StyleAugment

    _, styles = tree
    weights = {
        "decoder": str(decoder_file),
        "device": "cpu",
        "vgg": str(SHARED_VGG) if SHARED_VGG.is_file() else None,
    }
    images = torch.rand(40, 3, 24, 24)
    never = StyleAugment(styles, p=0.0, style_size=32, seed=0, **weights)
    assert torch.equal(never(images), images)
    half = StyleAugment(styles, p=0.5, alpha=(0.5, 1.0), style_size=32, seed=1, **weights)
    out = half(images)
    changed = [not torch.equal(a, b) for a, b in zip(out, images, strict=True)]
    assert 10 <= sum(changed) <= 30 and out.shape == images.shape
    copy = pickle.loads(
        pickle.dumps(StyleAugment(styles, p=0.5, alpha=(0.5, 1.0), style_size=32, seed=1, **weights))
    )
    assert copy._stylizer is None  # a worker loads its own networks on first use
    again = copy(images)
    assert [not torch.equal(a, b) for a, b in zip(again, images, strict=True)] == changed
    assert torch.allclose(again, out, atol=1e-4)
    one_by_one = StyleAugment(styles, p=0.5, alpha=(0.5, 1.0), style_size=32, seed=1, **weights)
    singles = torch.stack([one_by_one(x) for x in images])  # the same draws as the batched call
    assert torch.allclose(singles, out, atol=1e-4)


class _NextDraws(torch.utils.data.Dataset):
    """What the augmentation's generator draws next in whichever process serves the item."""

    def __init__(self, augment):
        self.augment = augment

    def __len__(self):
        return 4

    def __getitem__(self, index):
        self.augment(torch.zeros(3, 16, 16))  # p = 0: nothing restyled, the generator set up
        return self.augment.rng.random()


def test_style_augment_workers_draw_differently_and_reproducibly(tree, decoder_file):
    from adain import StyleAugment

    _, styles = tree
    vgg = str(SHARED_VGG) if SHARED_VGG.is_file() else None
    augment = StyleAugment(
        styles, p=0.0, style_size=32, seed=3, decoder=str(decoder_file), vgg=vgg, device="cpu"
    )

    def draws():
        loader = torch.utils.data.DataLoader(_NextDraws(augment), batch_size=2, num_workers=2)
        return [value for batch in loader for value in batch.tolist()]

    first = draws()
    assert first == draws()  # the same seed, the same draws in each worker
    assert first[:2] != first[2:]  # worker 0 served the first batch, worker 1 the second
    assert first[0] != first[1]  # reseeded once, not at every call


def test_ray_engine_makes_the_same_files_and_manifest_as_the_local_one(tree, tmp_path, decoder_file):
    pytest.importorskip("ray")
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    common = ("--seed", 7, "--ext", "png", "--per-content", 2, "--alpha", "0.4:1", "--workers", 2)
    assert main(dataset_args(tree, local, decoder_file, *common)) == 0
    assert main(dataset_args(tree, on_ray, decoder_file, *common, "--engine", "ray")) == 0
    assert manifest(on_ray) == manifest(local)  # the same rows in the same order
    for row in manifest(local):
        assert (on_ray / row["output"]).read_bytes() == (local / row["output"]).read_bytes()


def test_an_unreachable_ray_cluster_is_one_line(tree, tmp_path, decoder_file, capsys):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    args = dataset_args(tree, out, decoder_file, "--engine", "ray", "--ray-address", "127.0.0.1:1")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "cannot reach a Ray cluster at 127.0.0.1:1" in err and len(err.strip().splitlines()) == 1
    assert main(dataset_args(tree, out, decoder_file, "--ray-address", "auto")) == 2
    assert "--ray-address goes with --engine ray" in capsys.readouterr().err


def test_a_content_is_encoded_once_for_all_its_styles(tree, tmp_path, decoder_file, monkeypatch):
    from adain import dataset
    from adain.dataset import DatasetConfig, DatasetRun

    make_stylizer, calls = dataset._stylizer, []

    def counting(config):
        stylizer = make_stylizer(config)
        encode = stylizer.encode
        stylizer.encode = lambda x: calls.append(x.shape) or encode(x)
        return stylizer

    monkeypatch.setattr(dataset, "_stylizer", counting)
    src, styles = tree
    weights = {"decoder": str(decoder_file), **({"vgg": str(SHARED_VGG)} if SHARED_VGG.is_file() else {})}
    config = DatasetConfig(
        str(src), str(styles), str(tmp_path / "out"), per_content=3, style_size=32, weights=weights
    )
    run = DatasetRun(config)
    assert [len(group) for group in dataset.by_content(run.plan())] == [3] * 6
    assert run.execute(workers=1, progress=False) == {"written": 18, "skipped": 0, "failed": 0}
    styles_used = len({row["style"] for row in manifest(tmp_path / "out")})
    assert len(calls) == styles_used + 6  # each style once, each of the 6 contents once
