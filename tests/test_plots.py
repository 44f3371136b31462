import sys

from PIL import Image

from adain.plots import _running_mean, plot_summary, plot_training_curves
from adain.train import read_log


def test_running_mean_averages_the_last_window_rows():
    assert _running_mean([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert _running_mean([2.0, 4.0], 10) == [2.0, 3.0]


def test_read_log_shifts_iterations_by_the_offset(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text(
        "iteration,loss,content,style,lr,seconds\n10,5.0,1.0,0.4,1e-4,2.5\n20,4.0,1.0,0.3,1e-4,5.0\n"
    )
    rows = read_log(log, offset=100)
    assert [r["iteration"] for r in rows] == [110, 120] and rows[1]["style"] == 0.3


def test_training_curves_draw_one_line_per_run(tmp_path):
    rows = [{"iteration": i, "content": 2.0 / i, "style": 1.0 / i} for i in range(1, 30)]
    assert plot_training_curves({"a": rows, "b": rows[:10]}, tmp_path / "curves.png", window=5)
    assert Image.open(tmp_path / "curves.png").format == "PNG"


def test_without_matplotlib_nothing_is_drawn(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    summary = {
        "adain": {"content_loss": 1.0, "style_loss": 1.0, "content_loss_std": 0.1, "style_loss_std": 0.1}
    }
    assert not plot_summary(summary, tmp_path / "a.png")
    assert not plot_training_curves(
        {"a": [{"iteration": 1, "content": 1.0, "style": 1.0}]}, tmp_path / "b.png"
    )
    assert not list(tmp_path.iterdir())
