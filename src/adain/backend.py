"""How the networks run: the device, the arithmetic and the kernels, chosen once per ``Stylizer``.

The fast path (the default) is the paper's network computed with less work, within a measured
fidelity gate of 40 dB PSNR to the plain fp32 network:
- channels_last tensors, so oneDNN/cuDNN pick their faster convolutions;
- every upsample -> pad -> conv of the decoder run at the low resolution (``nets.UpsampleConv``);
- bf16 autocast where the hardware has fast bf16 (a GPU; a CPU with AVX-512 BF16 or AMX where it
  measured faster, ``cpu_prefers_bf16``: 47.1 dB at worst on the canonical images,
  ``benchmarks/fidelity.py``), the encoder's layers up to relu1_1 kept in fp32;
- elsewhere on the CPU, the wide 3x3 convs as Winograd F(6x6, 3x3) in fp32 (``winograd.py``).
``fast=False`` is the plain fp32 network, for comparisons.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import files, winograd
from .devices import cpu_name, dtype_name, pick_device, pick_precision
from .nets import Decoder, Encoder, fuse_upsampling, run_decoder


class Autocast(nn.Module):
    """``net`` run under autocast to ``dtype``, handing back float32 (what the pipeline around it,
    the AdaIN statistics and the tile buffers, computes in). Its first ``fp32_layers`` layers run in
    float32: the encoder's layers up to relu1_1 see pixels scaled to BGR*255 minus the mean, which
    bf16 rounds by up to half a grey level, the largest error of the bf16 pipeline
    (``benchmarks/fidelity.py``), at a few percent of the encoder's work."""

    def __init__(self, net: nn.Sequential, dtype: torch.dtype, fp32_layers: int = 0) -> None:
        super().__init__()
        layers = list(net)
        self.head, self.tail = nn.Sequential(*layers[:fp32_layers]), nn.Sequential(*layers[fp32_layers:])
        if hasattr(net, "relu_index"):  # a decoder's, for ``run_decoder``
            self.tail.relu_index = [i - fp32_layers for i in net.relu_index if i >= fp32_layers]
        self.dtype = dtype

    def forward(
        self,
        x: torch.Tensor,
        after_relu: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
        stop_at: int | None = None,
    ) -> torch.Tensor:
        """The network's output, or with ``after_relu`` or ``stop_at`` what ``nets.run_decoder``
        makes of it."""
        x = self.head(x).to(self.dtype)  # where autocast would round it anyway, but held half as large
        with torch.autocast(x.device.type, dtype=self.dtype):
            if after_relu is None and stop_at is None:
                return self.tail(x).float()
            return run_decoder(self.tail, x, after_relu, stop_at).float()


@dataclass(frozen=True)
class Backend:
    """Where and how the encoder and decoder run. ``choose`` makes the decision; ``encoder`` and
    ``decoder`` give the networks rewritten for it (the same parameters, shared, not copied)."""

    device: torch.device
    dtype: torch.dtype | None  # autocast to this; None is plain float32
    memory_format: torch.memory_format
    fused_upsampling: bool
    winograd: bool
    onnx_dir: Path | None = None  # run the exported models with ONNX Runtime (export.py) instead

    @classmethod
    def onnx(cls, export_dir: Path) -> Backend:
        """ONNX Runtime's CPU provider on the models in ``export_dir``, in float32."""
        return cls(torch.device("cpu"), None, torch.contiguous_format, False, False, Path(export_dir))

    @classmethod
    def choose(
        cls, device: str | torch.device = "auto", precision: str = "auto", fast: bool = True
    ) -> Backend:
        where = pick_device(device)
        if not fast:
            return cls(where, None, torch.contiguous_format, fused_upsampling=False, winograd=False)
        dtype = pick_precision(precision, where)
        use_winograd = dtype is None and where.type == "cpu"
        return cls(where, dtype, torch.channels_last, fused_upsampling=True, winograd=use_winograd)

    def place(self, net: nn.Module) -> nn.Module:
        """``net`` frozen for inference, on the device, in the memory format."""
        return net.eval().requires_grad_(False).to(self.device, memory_format=self.memory_format)

    def encoder(self, encoder: Encoder) -> nn.Module:
        if self.onnx_dir is not None:
            from .export import OnnxNet

            return OnnxNet(self.onnx_dir / "encoder.onnx")
        if self.dtype is not None:
            return Autocast(encoder, self.dtype, fp32_layers=encoder.tap_index["relu1_1"] + 1)
        return winograd.accelerate(encoder) if self.winograd else encoder

    def decoder(self, decoder: Decoder) -> nn.Module:
        if self.onnx_dir is not None:
            from .export import OnnxDecoder

            return OnnxDecoder(self.onnx_dir)
        net = fuse_upsampling(decoder) if self.fused_upsampling else decoder
        if self.dtype is not None:
            return Autocast(net, self.dtype)
        return winograd.accelerate(net) if self.winograd else net

    def fp32_encoder(self, encoder: Encoder) -> nn.Module:
        """The encoder in float32 whatever the arithmetic, for measuring losses."""
        return winograd.accelerate(encoder) if self.device.type == "cpu" and self.fast else encoder

    @property
    def fast(self) -> bool:
        return self.fused_upsampling

    def describe(self) -> str:
        if self.onnx_dir is not None:
            return "cpu, ONNX Runtime float32"
        kernels = ", Winograd convs" if self.winograd else ""
        return f"{self.device.type}, {dtype_name(self.dtype)}{kernels}"


# -- which arithmetic is faster on this CPU ------------------------------------------------------

CALIBRATION_FILE = "precision.json"


def cpu_prefers_bf16() -> bool:
    """Whether the pipeline runs faster in bf16 than in fp32 (with Winograd convs) on this CPU, one
    that has native bf16: timed once on the networks themselves (random weights, 256² image) and
    remembered in ``$ADAIN_HOME/precision.json`` per CPU model and PyTorch version.

    Native bf16 is not enough to go by: a 2-core AMD EPYC with AVX-512 BF16 ran the 512² pipeline
    1.45x faster in bf16, a 2-core Intel Xeon with AVX-512 BF16 (its AMX not exposed) 2.2x slower,
    and training 1.9x slower (README, "Performance")."""
    from .weights import adain_home

    # not per thread count: worker processes of one thread would otherwise choose apart from their parent
    key = f"CPU: {cpu_name()}; torch {torch.__version__}; winograd {winograd.available()}"
    path = adain_home() / CALIBRATION_FILE
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}  # not ours: measured again and written over
    entry = known.get(key)
    if isinstance(entry, dict) and entry.get("choice") in ("bf16", "fp32"):
        return entry["choice"] == "bf16"
    seconds = time_arithmetic()
    known[key] = {"choice": min(seconds, key=seconds.get), "seconds": seconds}
    with contextlib.suppress(OSError):  # a read-only home: measured again next time
        files.write_text(path, json.dumps(known, indent=2) + "\n")
    return known[key]["choice"] == "bf16"


def time_arithmetic(size: int = 256, runs: int = 2) -> dict[str, float]:
    """Seconds for encode then decode of a ``size``² image in each arithmetic the CPU could use
    (the best of ``runs`` after a first call), as ``Backend.choose`` would set them up."""
    torch.manual_seed(0)
    encoder, decoder = Encoder(), Decoder()
    image = torch.rand(1, 3, size, size).contiguous(memory_format=torch.channels_last)
    seconds = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", None)):
        backend = Backend(torch.device("cpu"), dtype, torch.channels_last, True, dtype is None)
        encode, decode = backend.encoder(backend.place(encoder)), backend.decoder(backend.place(decoder))
        times = []
        with torch.inference_mode():
            for _ in range(runs + 1):
                start = time.perf_counter()
                decode(encode(image))
                times.append(time.perf_counter() - start)
        seconds[name] = min(times[1:])
    return seconds
