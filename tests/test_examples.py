"""The README's examples run as written (on tiny trees)."""

import subprocess
import sys

import pytest

from .conftest import ROOT, make_image

EXAMPLES = ROOT / "examples"


def run(*args) -> str:
    done = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("where", ["in workers", "on batches"])
def test_the_classifier_example_trains_with_style_augmentation(tmp_path, where):
    shapes = tmp_path / "shapes"
    assert "wrote 18 images" in run(EXAMPLES / "shapes.py", shapes, "--train", 4, "--test", 2)
    assert sorted(p.name for p in (shapes / "train").iterdir()) == ["circle", "square", "triangle"]
    styles = tmp_path / "styles"
    styles.mkdir()
    for seed in range(2):
        make_image(styles / f"style{seed}.png", size=(64, 64), seed=seed)
    extra = ["--augment-batches", "--workers", 0] if where == "on batches" else ["--workers", 1]
    out = run(EXAMPLES / "train_classifier.py", shapes / "train", "--styles", styles, "--p", 1,
              "--style-size", 64, "--epochs", 2, "--batch", 6, "--test", shapes / "test", *extra)  # fmt: skip
    assert "style bank: 2 styles, p = 1" in out
    assert "epoch 2: loss" in out and f"test {shapes / 'test'}: accuracy" in out
