"""The figures of the reports: the paper's Fig. 3 (style loss against content loss per method) and its
Fig. 5 (training curves). matplotlib is optional (``adain[plots]``): without it nothing is drawn and
each function returns False."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_summary(summary: Mapping[str, Mapping[str, float]], path: Path) -> bool:
    """Style loss against content loss, one point per method, log axes (the paper's Fig. 3)."""
    plt = _pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    for method, row in summary.items():
        if row["content_loss"] <= 0 or row["style_loss"] <= 0:  # e.g. `content` itself: not on log axes
            continue
        ax.errorbar(row["content_loss"], row["style_loss"], xerr=row["content_loss_std"],
                    yerr=row["style_loss_std"], fmt="o", capsize=3, label=method)  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("content loss (relu4_1)")
    ax.set_ylabel("style loss (relu1_1..relu4_1)")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _running_mean(values: Sequence[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def plot_training_curves(
    runs: Mapping[str, Sequence[Mapping[str, float]]], path: Path, window: int = 10
) -> bool:
    """Content and style training loss against iteration, one line per run (rows of ``log.csv``,
    see ``train.read_log``): the raw points faint, a running mean over ``window`` log rows on top."""
    plt = _pyplot()
    if plt is None:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), dpi=100)
    for ax, key in zip(axes, ("content", "style"), strict=True):
        for label, rows in runs.items():
            iterations = [r["iteration"] for r in rows]
            values = [r[key] for r in rows]
            (line,) = ax.plot(iterations, _running_mean(values, window), lw=1.5, label=label)
            ax.plot(iterations, values, alpha=0.25, lw=0.8, color=line.get_color())
        ax.set_title(f"{key} loss" + (" (x1, before lambda=10)" if key == "style" else ""))
        ax.set_xlabel("iteration")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        if len(runs) > 1:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
