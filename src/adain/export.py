"""The networks as ONNX models, for runtimes other than PyTorch (``adain export``, ``backend="onnx"``).

``encoder.onnx`` maps an (N, 3, H, W) RGB image in [0, 1] to its relu4_1 features (N, 512, H/8, W/8),
``decoder.onnx`` maps features back to RGB; height and width are free. AdaIN between them is a
few lines of arithmetic that ``adain.json`` spells out for any runtime:

    t = std_s * (f_c - mean_c) / std_c + mean_s,   per sample and channel over H x W,
    std = sqrt(sum((f - mean)^2) / (H*W - 1) + 1e-5),   output = clamp(decoder(alpha * t + (1 - alpha) * f_c), 0, 1)

``decoder_match.onnx`` is the decoder with the ``decoder_match`` option inside
(``decoder_match.MatchingDecoder``: its inputs and outputs are listed in ``adain.json``).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from . import decoder_match, defaults, files, weights
from .errors import AdainError, UsageError
from .nets import EPS

MODEL_FILES = ("encoder.onnx", "decoder.onnx", "decoder_match.onnx", "adain.json")
NETWORK_FILES = MODEL_FILES[:3]
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
    _export(net, {"x": example}, ["y"], {"x": axes, "y": axes}, path)


def _export(net: nn.Module, inputs: dict[str, Tensor], outputs: list[str],
            axes: dict[str, dict[int, str]], path: Path) -> None:  # fmt: skip
    with files.replacing(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and shape notes
        torch.onnx.export(net, tuple(inputs.values()), str(tmp), input_names=list(inputs), output_names=outputs,
                          opset_version=OPSET, dynamic_axes=axes, dynamo=False)  # fmt: skip


def _export_matching(net: nn.Module, features: Tensor, path: Path) -> None:
    """``decoder_match.MatchingDecoder`` of ``net``, its inputs and outputs named as it documents."""
    channels = [m.out_channels for m in net if isinstance(m, nn.Conv2d)][: decoder_match.RELUS]
    image = {0: "batch", 2: "height", 3: "width"}
    per_region = {0: "batch", 1: "regions"}
    inputs = {"x": features, "regions": torch.ones(1, 1, *features.shape[2:]),
              "share": torch.full((1, decoder_match.RELUS), 0.5)}  # fmt: skip
    outputs, axes = ["y"], {"x": image, "y": image, "regions": {**image, 1: "regions"}, "share": {0: "batch"}}
    for k, c in enumerate(channels):
        for name in ("mean", "std"):
            inputs[f"target_{name}_{k}"] = torch.rand(1, 1, c) + 0.5
            outputs.append(f"{name}_{k}")
            axes[f"target_{name}_{k}"] = axes[f"{name}_{k}"] = {**per_region, 2: f"channels_{k}"}
    _export(decoder_match.MatchingDecoder(net), inputs, outputs, axes, path)


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
    if decoder_weights.decoder_match_covariance:  # the page and ONNX Runtime would paint another picture
        raise UsageError(
            f"{decoder_weights.source} paints with the decoder match's covariance, which the exported models "
            "cannot run (they move each channel's mean and std): record its match without it "
            "(scripts/set_decoder_match.py)"
        )
    encoder, net = encoder.eval(), net.eval()
    example = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        _export_net(encoder, example, out / "encoder.onnx")
        _export_net(net, encoder(example), out / "decoder.onnx")
        _export_matching(net, encoder(example), out / "decoder_match.onnx")
    for name in NETWORK_FILES:
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
        "decoder_match": {
            "file": "decoder_match.onnx",
            "what": "the decoder with each ReLU k (0-7 from relu4_1's end) moved share[:, k] of the way to the "
            "targets' channel statistics, per region: a = a + share * (max(0, a * s + b) - a) with "
            "s = target_std / std(a), b = target_mean - mean(a) * s",
            "inputs": "x (N, 512, h, w); regions (N, R, h, w) one hot at relu4_1's size; share (N, 8); "
            "target_mean_k, target_std_k (N, R, C_k), or (N, R, 1) where share[:, k] is 0",
            "outputs": "y; mean_k, std_k (N, R, C_k): the activations' statistics before they moved "
            "(at share 0, decoding a style's relu4_1: its statistics, the targets)",
            # a decoder that records a match (trained with it on, or chosen after): it paints with it
            "layers": list(decoder_weights.decoder_match_layers or defaults.DECODER_MATCH_LAYERS),
            "default_share": decoder_weights.decoder_match,
            "share": "the option's share times alpha; the region of a position under 2 positions is not moved",
        },
    }
    files.write_text(out / "adain.json", json.dumps(description, indent=2) + "\n")
    return out


def _session(path: Path, threads: int | None) -> object:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _as_numpy(x: Tensor) -> object:
    """A tensor as ONNX Runtime takes it: float32, contiguous, on the CPU."""
    return x.detach().float().contiguous().cpu().numpy()


class OnnxNet(nn.Module):
    """An exported network run by ONNX Runtime's CPU provider, in place of the PyTorch one."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        super().__init__()
        self.session = _session(Path(path), threads)

    def forward(self, x: Tensor) -> Tensor:
        y = self.session.run(None, {"x": _as_numpy(x)})[0]  # type: ignore[attr-defined]
        return torch.from_numpy(y).to(x.device)


class OnnxDecoder(OnnxNet):
    """An export's ``decoder.onnx``; with ``matching``, its ``decoder_match.onnx`` (opened on first
    use: a pipeline without the option never loads it)."""

    def __init__(self, export_dir: str | os.PathLike, threads: int | None = None) -> None:
        super().__init__(Path(export_dir) / "decoder.onnx", threads)
        self.export_dir, self.threads = Path(export_dir), threads
        self._matching: object = None

    def matching(self, x: Tensor, inputs: dict[str, Tensor]) -> list[Tensor]:
        """``decoder_match.MatchingDecoder``'s outputs for features ``x`` and its other ``inputs``."""
        if self._matching is None:
            self._matching = _session(self.export_dir / "decoder_match.onnx", self.threads)
        feed = {name: _as_numpy(value) for name, value in {"x": x, **inputs}.items()}
        return [torch.from_numpy(y).to(x.device) for y in self._matching.run(None, feed)]  # type: ignore[attr-defined]


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
