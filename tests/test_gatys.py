import pytest
import torch

from adain.evaluate import evaluate, summarize
from adain.gatys import gatys
from adain.nets import mean_std

from .conftest import make_image


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_gatys_lowers_its_loss(stylizer, optimizer):
    torch.manual_seed(0)
    content = torch.rand(1, 3, 32, 32)
    style = torch.rand(1, 3, 32, 32) ** 3
    image, history = gatys(stylizer.encoder, content, style, iterations=8, optimizer=optimizer)
    assert len(history) == 8
    assert history[-1] < 0.7 * history[0]
    assert image.shape == content.shape and image.min() >= 0 and image.max() <= 1


def test_gatys_in_the_evaluation_beats_the_content_on_style(stylizer, tmp_path):
    c = make_image(tmp_path / "c.png", (32, 32), seed=1)
    s = make_image(tmp_path / "s.png", (32, 32), seed=2)
    results = evaluate(stylizer, [c], [s], ["gatys", "content"], size=32, progress=False, gatys_iters=10)
    summary = summarize(results)
    assert summary["gatys"]["style_loss"] < summary["content"]["style_loss"]
    assert summary["gatys"]["content_loss"] > 0


def test_evaluation_keeps_outputs_and_matches_the_stylizer(stylizer, tmp_path):
    """Cached features give the same losses as encoding everything afresh; outputs are kept."""
    from adain import images
    from adain.evaluate import losses
    from adain.images import load_square

    c = make_image(tmp_path / "c.png", (40, 32), seed=3)
    s = make_image(tmp_path / "s.png", (32, 48), seed=4)
    outputs = tmp_path / "outputs"
    (result,) = evaluate(stylizer, [c], [s], ["adain"], size=32, progress=False, outputs_dir=outputs)
    kept = outputs / "adain" / "c__s.png"
    assert kept.is_file() and images.load_image(kept).size == (32, 32)
    content, style = load_square(c, 32), load_square(s, 32)
    output = images.to_tensor(stylizer(content, style))
    with torch.inference_mode():
        expected = losses(
            stylizer, output, stylizer.encoder(content), [mean_std(f) for f in stylizer.encoder.taps(style)]
        )
    assert result.content_loss == pytest.approx(expected[0], rel=0.05)
    assert result.style_loss == pytest.approx(expected[1], rel=0.05)
