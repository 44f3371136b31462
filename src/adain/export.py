"""The networks as ONNX models, for runtimes other than PyTorch (``adain export``, ``backend="onnx"``).

``encoder.onnx`` maps an (N, 3, H, W) RGB image in [0, 1] to its relu4_1 features (N, 512, H/8, W/8),
``decoder.onnx`` maps features back to RGB; height and width are free. AdaIN between them is a
few lines of arithmetic that ``adain.json`` spells out for any runtime:

    t = std_s * (f_c - mean_c) / std_c + mean_s,   per sample and channel over H x W,
    std = sqrt(sum((f - mean)^2) / (H*W - 1) + 1e-5),   output = clamp(decoder(alpha * t + (1 - alpha) * f_c), 0, 1)
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from . import files, weights
from .errors import AdainError, UsageError
from .nets import EPS

MODEL_FILES = ("encoder.onnx", "decoder.onnx", "adain.json")
OPSET = 17


def _needs_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise AdainError(
            "ONNX export and the onnx backend need their extra: pip install 'adain[onnx]'"
        ) from None


def _export_net(net: nn.Module, example: Tensor, path: Path) -> None:
    axes = {0: "batch", 2: "height", 3: "width"}
    with files.replacing(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and shape notes
        torch.onnx.export(net, (example,), str(tmp), input_names=["x"], output_names=["y"], opset_version=OPSET,
                          dynamic_axes={"x": axes, "y": axes}, dynamo=False)  # fmt: skip


def half_weights(path: Path) -> None:
    """Store the model's float32 weights as float16, each cast back to float32 where it is used:
    half the file (what a browser downloads), the same fp32 arithmetic in every runtime (ONNX
    Runtime's CPU provider has no fp16 convolutions on x86), weights rounded to 11 bits."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "_fp16")
        init.CopyFrom(half)
        casts.append(
            helper.make_node("Cast", [half.name], [half.name[: -len("_fp16")]], to=onnx.TensorProto.FLOAT)
        )
    nodes = [*casts, *graph.node]  # the casts before their users: the graph stays topologically sorted
    del graph.node[:]
    graph.node.extend(nodes)
    with files.replacing(path) as tmp:
        onnx.save(model, str(tmp))


def export_onnx(
    out_dir: str | os.PathLike,
    vgg: str | os.PathLike | None = None,
    decoder: str | os.PathLike | None = None,
    overwrite: bool = False,
    fp16: bool = False,
) -> Path:
    """Write ``encoder.onnx``, ``decoder.onnx`` and ``adain.json`` into ``out_dir``; checked with
    ``onnx.checker``. An existing export is replaced only with ``overwrite``; ``fp16`` stores the
    weights in half precision (``half_weights``)."""
    _needs_onnx()
    import onnx

    out = Path(out_dir)
    earlier = [name for name in MODEL_FILES if (out / name).exists()]
    if earlier and not overwrite:
        raise UsageError(f"{out} holds an export ({', '.join(earlier)}): pass --overwrite to replace it")
    files.check_writable(out)
    encoder, encoder_weights = weights.load_encoder(vgg)
    net, decoder_weights = weights.load_decoder(decoder, encoder_weights)
    encoder, net = encoder.eval(), net.eval()
    example = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        _export_net(encoder, example, out / "encoder.onnx")
        _export_net(net, encoder(example), out / "decoder.onnx")
    for name in MODEL_FILES[:2]:
        if fp16:
            half_weights(out / name)
        onnx.checker.check_model(str(out / name))
    description = {
        "format": "adain-onnx-1",
        "input": "RGB in [0, 1], (N, 3, H, W) float32; H and W padded to a multiple of 8 (reflection), cropped after",
        "weights": "float16, cast to float32 in the graph" if fp16 else "float32",
        "encoder": {"file": "encoder.onnx", "output": "relu4_1", "stride": 8, "weights": encoder_weights.id},
        "adain": {
            "eps": EPS,
            "std": "unbiased (divide by H*W - 1), then sqrt(var + eps)",
            "formula": "std_s * (f_c - mean_c) / std_c + mean_s; then alpha * t + (1 - alpha) * f_c",
        },  # fmt: skip
        "decoder": {
            "file": "decoder.onnx",
            "output": "RGB, clamp to [0, 1]",
            "width": net.width,  # the hidden layers' channels, times the paper's decoder's
            "metadata": decoder_weights.metadata,
        },
    }
    files.write_text(out / "adain.json", json.dumps(description, indent=2) + "\n")
    return out


class OnnxNet(nn.Module):
    """An exported network run by ONNX Runtime's CPU provider, in place of the PyTorch one."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        super().__init__()
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(self, x: Tensor) -> Tensor:
        y = self.session.run(None, {"x": x.detach().float().contiguous().cpu().numpy()})[0]
        return torch.from_numpy(y).to(x.device)


def cached_export(vgg: str | os.PathLike | None, decoder: str | os.PathLike | None) -> Path:
    """The export of these weights under ``$ADAIN_HOME/onnx``, made on first use."""
    _needs_onnx()
    decoder_path = weights.resolve_decoder(decoder)
    encoder_bytes = Path(vgg).read_bytes() if vgg else weights.encoder_id(None).encode()
    key = hashlib.sha256(encoder_bytes + decoder_path.read_bytes()).hexdigest()[:16]
    out = weights.adain_home() / "onnx" / key
    if not all((out / name).is_file() for name in MODEL_FILES):
        export_onnx(out, vgg, decoder_path, overwrite=True)
    return out
