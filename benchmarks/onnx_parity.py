"""The exported models against the PyTorch pipeline on the canonical pairs: PSNR of ONNX Runtime's
result (fp32 export, and ``--fp16`` weights) to PyTorch's plain fp32 result, at 256 and 512 px
(centre squares) and at a non-square size (the content's short side at 512, uncropped).

    python benchmarks/onnx_parity.py [--styles 4] [--decoder D]

Every content with the first ``--styles`` styles (in name order; 0: all 20, the 220 pairs).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from results_file import add_out_flags, parse_args, write_results

from adain import images
from adain.export import OnnxNet, export_onnx
from adain.nets import adain
from adain.tiling import pad_to_stride
from adain.weights import load_decoder, load_encoder

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "images"


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    a8, b8 = (x.mul(255).round().double() for x in (a, b))
    mse = float(((a8 - b8) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def stylize(encode, decode, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) content and style in [0, 1] -> the (3, H, W) result."""
    height, width = content.shape[-2:]
    with torch.no_grad():
        out = decode(adain(encode(pad_to_stride(content)), encode(style)))
    return out[0, :, :height, :width].clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--styles", type=int, default=4)
    parser.add_argument("--decoder", type=Path)
    add_out_flags(parser, "onnx_parity.json")
    args = parse_args(parser)
    encoder, encoder_weights = load_encoder(None)
    decoder, _ = load_decoder(args.decoder, encoder_weights)
    encoder, decoder = encoder.eval(), decoder.eval()
    contents = images.find_images(SHARED / "content")
    styles = images.find_images(SHARED / "style")[: args.styles or None]
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        runtimes = {}
        for precision, fp16 in (("fp32", False), ("fp16", True)):
            out = export_onnx(Path(tmp) / precision, None, args.decoder, fp16=fp16)
            runtimes[precision] = (OnnxNet(out / "encoder.onnx"), OnnxNet(out / "decoder.onnx"))
        for size in ("256", "512", "512 short side, uncropped"):
            scores: dict[str, list[float]] = {"fp32": [], "fp16": []}
            for content_path in contents:
                if size.isdigit():
                    content = images.load_square(content_path, int(size))
                else:
                    content = images.to_tensor(images.resize_short_side(images.load_image(content_path), 512))
                for style_path in styles:
                    style = images.load_square(style_path, 512 if not size.isdigit() else int(size))
                    reference = stylize(encoder, decoder, content, style)
                    for precision, (onnx_encoder, onnx_decoder) in runtimes.items():
                        scores[precision].append(
                            psnr(stylize(onnx_encoder, onnx_decoder, content, style), reference)
                        )
            result[size] = {
                p: {"pairs": len(v), "min_db": min(v), "median_db": statistics.median(v)}
                for p, v in scores.items()
            }
            print(
                size,
                {
                    p: f"min {r['min_db']:.1f} dB, median {r['median_db']:.1f} dB"
                    for p, r in result[size].items()
                },
            )
    write_results(args.out, result)


if __name__ == "__main__":
    main()
