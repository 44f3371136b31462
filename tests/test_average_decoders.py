"""scripts/average_decoders.py: the weighted mean of decoders that share a layout."""

import subprocess
import sys
from pathlib import Path

import torch

from adain import weights
from adain.nets import Decoder

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "average_decoders.py"


def decoder_file(path: Path, seed: int, norm: str = "none", iterations: int = 100) -> Path:
    torch.manual_seed(seed)
    weights.export_decoder(
        Decoder(norm), path, {"iterations": str(iterations), "encoder": "vgg-x"}, half=True
    )
    return path


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True)


def test_weighted_mean_with_its_sources_in_the_metadata(tmp_path):
    a, b = (
        decoder_file(tmp_path / "a.safetensors", 0, iterations=5000),
        decoder_file(tmp_path / "b.safetensors", 1),
    )
    out = tmp_path / "soup.safetensors"
    done = run(a, b, "--weights", "3,1", "--out", out)
    assert done.returncode == 0, done.stderr
    soup, state_a, state_b = (weights.load_decoder_state(p) for p in (out, a, b))
    for key, value in soup.items():
        wanted = 0.75 * state_a[key].float() + 0.25 * state_b[key].float()
        assert torch.allclose(value.float(), wanted, atol=2e-3, rtol=2e-3), key
    assert not all(torch.equal(soup[k], state_a[k]) for k in soup)
    found = weights.DecoderWeights.read(out)
    assert found.iterations == 5000 and found.encoder == "vgg-x"
    assert found.metadata["weights"] == "mean of 2 decoders' weights (averaged_from)"
    assert (
        found.metadata["averaged_from"]
        == "a.safetensors (5000 iterations) x 0.750, b.safetensors (100 iterations) x 0.250"
    )
    again = run(a, b, "--out", out)  # an existing file is kept unless asked
    assert again.returncode != 0 and "exists; --overwrite" in again.stderr
    assert run(a, b, "--out", out, "--overwrite").returncode == 0


def test_a_negative_weight_extrapolates_past_the_other_decoder(tmp_path):
    a, b = (decoder_file(tmp_path / f"{n}.safetensors", seed) for n, seed in (("a", 0), ("b", 1)))
    out = tmp_path / "past-b.safetensors"
    done = run(b, a, "--weights=1.4,-0.4", "--out", out)
    assert done.returncode == 0, done.stderr
    past, state_a, state_b = (weights.load_decoder_state(p) for p in (out, a, b))
    for key, value in past.items():
        wanted = state_b[key].float() + 0.4 * (state_b[key].float() - state_a[key].float())
        assert torch.allclose(value.float(), wanted, atol=4e-3, rtol=4e-3), key


def test_refuses_what_does_not_line_up(tmp_path):
    a = decoder_file(tmp_path / "a.safetensors", 0)
    normed = decoder_file(tmp_path / "n.safetensors", 1, norm="instance")
    out = tmp_path / "soup.safetensors"
    for args, message in (
        ((a, normed), "another decoder layout or encoder"),
        ((a, a, "--weights", "1"), "1 weights for 2 decoders"),
        ((a, a, "--weights", "1,x"), "not a comma-separated list"),
        ((a, a, "--weights", "0,0"), "sum to more than zero"),
        ((a, a, "--weights=1,-1"), "sum to more than zero"),
        ((a,), "two or more decoders"),
        ((a, tmp_path / "missing.safetensors"), "no such file"),
    ):
        done = run(*args, "--out", out)
        assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr, args
        assert not out.exists()
