"""``adain serve``: the REST API and the web page."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import defaults
from ..errors import AdainError
from . import args as flags


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="REST API and web page")
    add = parser.add_argument
    add("--host", default="127.0.0.1")
    add("--port", type=flags.port, default=8000, help="0-65535 (0: any free port; default 8000)")
    add("--workers", type=flags.positive_int, default=1, help="processes, each with its own model")
    add("--max-upload-mb", type=flags.positive_float, default=defaults.SERVE_MAX_UPLOAD_MB)
    add(
        "--max-pixels",
        type=flags.positive_int,
        default=defaults.SERVE_MAX_PIXELS,
        help="largest image accepted",
    )
    add("--queue", type=flags.non_negative_int, default=defaults.SERVE_QUEUE,
        help="requests that may wait; more get 503")  # fmt: skip
    add("--concurrency", type=flags.positive_int, default=defaults.SERVE_CONCURRENCY,
        help="inferences at once per process")  # fmt: skip
    add("--styles-dir", type=Path, help="images offered as built-in styles on the page")
    add("--web-runtime", type=Path, metavar="DIR",
        help="ONNX Runtime Web's dist folder, for the page's browser mode (default: node_modules, after npm ci)")  # fmt: skip
    add("--feedback-preview", type=flags.scale, metavar="SCALE",
        help="requests asking for feedback take its first pass at this scale (0-1): less work on large "
        "images (see adain stylize --help; default 1: at full size)")  # fmt: skip
    add("--max-memory", type=flags.positive_float, default=defaults.SERVE_MAX_MEMORY_MB, metavar="MB",
        help="each inference's memory budget: larger images are processed in tiles, and a polish that "
        f"would need more is refused (default {defaults.SERVE_MAX_MEMORY_MB:g})")  # fmt: skip
    add("--max-polish", type=flags.polish_steps, default=defaults.SERVE_MAX_POLISH, metavar="STEPS",
        help="the most polish steps a request may ask for, each about a single pass's time (see adain "
        f"stylize --help; 0: none; default {defaults.SERVE_MAX_POLISH})")  # fmt: skip
    flags.add_weights_flags(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json
    import os
    from dataclasses import asdict

    try:
        import uvicorn

        from ..serve import ServeConfig, create_app
    except ImportError:
        raise AdainError("adain serve needs its extras: pip install 'adain[serve]'") from None
    config = ServeConfig(
        vgg=str(args.vgg) if args.vgg else None, decoder=str(args.decoder) if args.decoder else None,
        device=args.device, fast=not args.plain, precision=args.precision, max_upload_mb=args.max_upload_mb,
        max_pixels=args.max_pixels, concurrency=args.concurrency, queue=args.queue,
        styles_dir=str(args.styles_dir) if args.styles_dir else None,
        web_runtime=str(args.web_runtime) if args.web_runtime else None, feedback_preview=args.feedback_preview,
        max_memory_mb=args.max_memory, max_polish=args.max_polish,
    )  # fmt: skip
    from ..browser import runtime_dir

    runtime_dir(args.web_runtime)  # a wrong folder is a usage error before the model loads
    check_can_listen(args.host, args.port)
    if args.workers == 1:
        uvicorn.run(create_app(config), host=args.host, port=args.port)
        return 0
    os.environ["ADAIN_SERVE_CONFIG"] = json.dumps(asdict(config))
    uvicorn.run(
        "adain.serve:app_from_env", factory=True, host=args.host, port=args.port, workers=args.workers
    )
    return 0


def check_can_listen(host: str, port: int) -> None:
    """A one-line error now for an address the server could not listen on, rather than uvicorn's log
    lines after the model has loaded."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind(address)
    except OSError as exc:  # socket.gaierror included
        raise AdainError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
