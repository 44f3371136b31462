"""The paper's ablation study (its Sec. 7.1 / Fig. 4 and 5): the same training budget for each variant,
then the same evaluation.

Variants: the paper's decoder (content target t, no normalisation), content target f(c) instead of
t, and BatchNorm or InstanceNorm layers in the decoder. The paper finds t better than f(c) and both
normalisations harmful.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image

from . import files, images, weights
from .defaults import ABLATION_VARIANTS as VARIANTS
from .evaluate import evaluate, summarize
from .nets import Decoder
from .plots import plot_training_curves
from .stylize import Stylizer
from .train import TrainConfig, Trainer, read_log


def ablate(
    base: TrainConfig,
    eval_contents: list[Path],
    eval_styles: list[Path],
    out_dir: str | Path,
    variants: list[str] | None = None,
    size: int = 256,
    progress: bool = True,
) -> dict[str, dict]:
    """Train each variant in ``out_dir/<variant>`` (resuming any that exist), evaluate, and write
    ``ablation.json``, ``ablation.md``, ``ablation_grid.jpg`` and (with matplotlib)
    ``ablation_curves.png``, the variants' training losses (the paper's Fig. 5)."""
    out_dir = Path(out_dir)
    chosen = variants or list(VARIANTS)
    encoder, encoder_weights = weights.load_encoder(base.vgg)
    table, stylizers, logs = {}, {}, {}
    for name in chosen:
        config = replace(base, out_dir=str(out_dir / name), **VARIANTS[name])
        trainer = Trainer(config, progress=progress)
        trainer.resume()
        if trainer.iteration < config.max_iter:
            trainer.run()
        decoder = Decoder(config.decoder_norm)
        decoder.load_state_dict(trainer.decoder.state_dict())
        stylizer = Stylizer(encoder, decoder, trainer.device, encoder_weights=encoder_weights)
        results = evaluate(stylizer, eval_contents, eval_styles, ["adain"], size, progress)
        logs[name] = read_log(Path(config.out_dir) / "log.csv")
        table[name] = {**summarize(results)["adain"], **VARIANTS[name], "iterations": trainer.iteration,
                       **late_training_losses(logs[name])}  # fmt: skip
        stylizers[name] = stylizer
    files.write_text(out_dir / "ablation.json", json.dumps(table, indent=2) + "\n")
    files.write_text(out_dir / "ablation.md", markdown_table(table))
    image = grid(stylizers, eval_contents[:2], eval_styles[:2], size)
    images.save_image(image, out_dir / "ablation_grid.jpg", overwrite=True, quality=88)
    longest = max(len(rows) for rows in logs.values())  # training losses are noisy: a running mean
    plot_training_curves(logs, out_dir / "ablation_curves.png", window=max(1, longest // 20))
    return table


def late_training_losses(log: list[dict[str, float]]) -> dict[str, float]:
    """The mean training losses over the last third of a run (the paper's Fig. 5 read as numbers;
    single batches are too noisy to compare)."""
    last = log[-1]["iteration"] if log else 0
    rows = [r for r in log if r["iteration"] > last * 2 / 3] or log
    if not rows:
        return {}
    return {"train_content_loss": sum(r["content"] for r in rows) / len(rows),
            "train_style_loss": sum(r["style"] for r in rows) / len(rows),
            "train_from_iteration": int(rows[0]["iteration"])}  # fmt: skip


def markdown_table(table: dict[str, dict]) -> str:
    """Evaluation losses, and where the run logged them, the training losses of its last third."""
    lines = [
        "| variant | content target | decoder norm | iterations | content loss | style loss "
        "| training content loss, last third | training style loss, last third |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in table.items():
        late = [
            f"{row[key]:.3f}" if key in row else "—" for key in ("train_content_loss", "train_style_loss")
        ]
        lines.append(
            f"| {name} | {row['content_target']} | {row['decoder_norm']} | {row['iterations']} | "
            f"{row['content_loss']:.3f} ± {row['content_loss_std']:.3f} | {row['style_loss']:.3f} ± {row['style_loss_std']:.3f} "
            f"| {late[0]} | {late[1]} |"
        )
    return "\n".join(lines) + "\n"


def grid(stylizers: dict[str, Stylizer], contents: list[Path], styles: list[Path], size: int) -> Image.Image:
    """Rows: content x style pairs; columns: content, style, then each variant's result."""
    rows = []
    for c in contents:
        for s in styles:
            tiles = [images.load_square(c, size), images.load_square(s, size)]
            tiles += [images.to_tensor(st(tiles[0], tiles[1])) for st in stylizers.values()]
            rows.append(torch.cat(tiles, dim=3))
    return images.to_pil(torch.cat(rows, dim=2))
