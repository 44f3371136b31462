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

from . import images, weights
from .evaluate import evaluate, load_square, summarize
from .nets import Decoder, Encoder
from .stylize import Stylizer
from .train import TrainConfig, Trainer

VARIANTS = {
    "adain": {"content_target": "t", "decoder_norm": "none"},
    "content-target-fc": {"content_target": "fc", "decoder_norm": "none"},
    "decoder-batchnorm": {"content_target": "t", "decoder_norm": "batch"},
    "decoder-instancenorm": {"content_target": "t", "decoder_norm": "instance"},
}


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
    ``ablation.json``, ``ablation.md`` and ``ablation_grid.jpg``."""
    out_dir = Path(out_dir)
    chosen = variants or list(VARIANTS)
    encoder = Encoder()
    encoder.load_state_dict(
        weights.load_encoder_state(base.vgg) if base.vgg else weights.build_encoder_state()
    )
    table, stylizers = {}, {}
    for name in chosen:
        config = replace(base, out_dir=str(out_dir / name), **VARIANTS[name])
        trainer = Trainer(config, progress=progress)
        trainer.resume()
        if trainer.iteration < config.max_iter:
            trainer.run()
        decoder = Decoder(config.decoder_norm)
        decoder.load_state_dict(trainer.decoder.state_dict())
        stylizer = Stylizer(encoder, decoder, trainer.device)
        results = evaluate(stylizer, eval_contents, eval_styles, ["adain"], size, progress)
        table[name] = {**summarize(results)["adain"], **VARIANTS[name], "iterations": trainer.iteration}
        stylizers[name] = stylizer
    (out_dir / "ablation.json").write_text(json.dumps(table, indent=2) + "\n")
    (out_dir / "ablation.md").write_text(markdown_table(table))
    grid(stylizers, eval_contents[:2], eval_styles[:2], size).save(out_dir / "ablation_grid.jpg", quality=88)
    return table


def markdown_table(table: dict[str, dict]) -> str:
    lines = [
        "| variant | content target | decoder norm | iterations | content loss | style loss |",
        "|---|---|---|---:|---:|---:|",
    ]
    for name, row in table.items():
        lines.append(
            f"| {name} | {row['content_target']} | {row['decoder_norm']} | {row['iterations']} | "
            f"{row['content_loss']:.3f} ± {row['content_loss_std']:.3f} | {row['style_loss']:.3f} ± {row['style_loss_std']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def grid(stylizers: dict[str, Stylizer], contents: list[Path], styles: list[Path], size: int):
    """Rows: content x style pairs; columns: content, style, then each variant's result."""
    rows = []
    for c in contents:
        for s in styles:
            tiles = [load_square(c, size), load_square(s, size)]
            tiles += [images.to_tensor(st(tiles[0], tiles[1])) for st in stylizers.values()]
            rows.append(torch.cat(tiles, dim=3))
    return images.to_pil(torch.cat(rows, dim=2))
