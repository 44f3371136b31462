"""Training the decoder with the paper's recipe, resumable at any point.

L = content_weight * L_c + style_weight * L_s (the losses in ``losses.py``),
Adam at lr / (1 + lr_decay * iteration), optionally ramped up linearly over the first `warmup`
iterations (fine-tuning a trained decoder with a fresh Adam state), and optionally an exponential
moving average of the decoder's weights (`ema`), which is then what the run exports.
"""

from __future__ import annotations

import csv
import io
import os
import pickle
import random
import shlex
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from . import defaults, features, files, images, weights
from .data import ImageDataset, endless
from .decoder_match import check_layers, decoder_statistics
from .devices import describe_device, dtype_name, keep_freed_memory, pick_device, pick_precision
from .errors import AdainError, UsageError
from .features import CachedBatches, ContentFeatures, StyleStats
from .losses import AdaINLoss, ContentTarget
from .nets import (
    TAPS,
    Decoder,
    DecoderNorm,
    WidenMode,
    adain,
    check_decoder_width,
    new_channels,
    taps,
    widen_decoder,
)


@dataclass
class TrainConfig:
    content_dir: str
    style_dir: str
    out_dir: str
    load_size: int = defaults.LOAD_SIZE  # paper: 512 (scaled down for a CPU)
    crop_size: int = defaults.CROP_SIZE  # paper: 256
    batch_size: int = defaults.BATCH_SIZE  # paper: 8
    max_iter: int = defaults.MAX_ITER  # paper: 160k
    lr: float = defaults.LR
    lr_decay: float = defaults.LR_DECAY
    warmup: int = 0  # iterations of linear lr ramp-up from lr / warmup
    style_weight: float = defaults.STYLE_WEIGHT
    content_weight: float = defaults.CONTENT_WEIGHT
    content_target: ContentTarget = "t"
    decoder_norm: DecoderNorm = "none"
    decoder_width: float = 1.0  # the hidden layers' channels times this (nets.decoder_layout)
    widen: WidenMode = "copy"  # how a narrower --init-decoder is widened (nets.widen_decoder)
    new_channel_lr: float = 1.0  # the lr of the parameters beyond the paper's decoder, times this
    save_every: int = defaults.SAVE_EVERY
    keep_every: int = 0  # a copy of the exported decoder every this many iterations, in snapshots/; 0: none
    log_every: int = defaults.LOG_EVERY
    image_every: int = defaults.IMAGE_EVERY  # a content x style preview grid, in previews/ and TensorBoard
    tensorboard: bool = True  # when the tensorboard package is installed
    workers: int = defaults.WORKERS
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool = True
    winograd: bool = True  # Winograd convs on the CPU (fp32 only; see winograd.py)
    vgg: str | None = None
    init_decoder: str | None = None  # start from these weights instead of random ones
    feature_cache: str | None = None  # encoder features of the training images kept here (features.py)
    style_targets: Literal["crops", "whole"] = "crops"  # whole: the whole style image's (needs the cache)
    style_scales: tuple[int, ...] = ()  # short sides the cached style crops are cut at; () = load_size
    style_upscale: bool = True  # False: smaller style images stay at their own size (at least a crop)
    style_jitter: Literal["", "turn", "turn+hue", "hue", "half-turn"] = ""  # defaults.STYLE_JITTERS
    style_mix: float = 0.0  # probability that a cached style is blended with another (CachedBatches)
    style_mix_reach: float = 0.0  # the blend's weight drawn from [-reach, 1 + reach]
    style_gain: float = 0.0  # log-std of a random gain on each channel's cached style statistics
    bold_styles: float = 0.0  # styles drawn with probability proportional to their energy to this power
    # the style loss's weight at each tap, relu1_1 first; (): all 1
    style_layer_weights: tuple[float, ...] = ()
    clamp_output: bool = False  # the losses of the output clamped to [0, 1], as saved (losses.clamped)
    # the content target: a frozen teacher's two-pass output (losses.AdaINLoss.taught) with this
    # feedback share (0: the paper's target), at AdaIN strength distil_alpha
    distil_feedback: float = 0.0
    distil_alpha: float = 1.0
    teacher: str | None = None  # the teacher's weights (default --init-decoder); the run keeps a copy
    # a loss on the decoder's own ReLUs (losses.decoder_match_loss) at this weight, towards what the
    # teacher's hold decoding each style image (0: none)
    decoder_match_weight: float = 0.0
    # the decoder match switched on while training, at this share (0: off): the same targets moved
    # towards inside the decoder instead of a loss, so the layers learn to paint from matched activations
    decoder_match: float = 0.0
    decoder_match_layers: tuple[int, ...] = defaults.DECODER_MATCH_LAYERS
    ema: float = 0.0  # decay of the exported moving average of the weights; 0: export the weights as trained
    device: str = "auto"
    extra: dict = field(default_factory=dict)


# what defines the optimisation (a resumed run that changes one of these is told so)
RECIPE = ("load_size", "crop_size", "batch_size", "lr", "lr_decay", "warmup", "style_weight", "content_weight",
          "content_target", "seed", "feature_cache", "style_targets", "style_scales", "style_upscale",
          "style_jitter", "style_mix", "style_mix_reach", "style_gain", "bold_styles", "style_layer_weights", "clamp_output",
          "new_channel_lr", "distil_feedback", "distil_alpha", "decoder_match_weight", "decoder_match",
          "decoder_match_layers", "ema")  # fmt: skip
# the flags named otherwise than their field
FLAGS = {"style_jitter": "--jitter-styles", "style_mix": "--mix-styles", "style_mix_reach": "--mix-reach"}


def learning_rate(config: TrainConfig, iteration: int) -> float:
    """Inverse-time decay, ramped up linearly over the first ``warmup`` iterations: a fresh Adam
    state takes steps of about the lr in every parameter at once, which knocks a trained decoder
    off its optimum before its moment estimates settle."""
    ramp = min(1.0, (iteration + 1) / config.warmup) if config.warmup else 1.0
    return ramp * config.lr / (1.0 + config.lr_decay * iteration)


# -------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint_file(obj: object, path: Path) -> None:
    """``obj`` written whole; a failure (a full disk, say) is one line with its cause, leaving the
    previous checkpoint as it was and no partial file."""
    buffer = io.BytesIO()  # torch.save's own writer reports a full disk as "unexpected pos ..."
    torch.save(obj, buffer)
    try:
        files.write_bytes(path, buffer.getbuffer())
    except OSError as exc:
        raise AdainError(f"cannot write the checkpoint {path}: {exc.strerror or exc}") from None


def check_out_dir(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse, before any work, a run that would lose another run's files: a checkpoint to continue
    (without ``--resume``), or a finished run's log and decoder (without ``--overwrite``)."""
    checkpoint = out_dir / "checkpoint.pt"
    if checkpoint.exists() and not checkpoint.is_file():
        raise AdainError(f"{checkpoint} is not a file")
    earlier = [name for name in RUN_FILES if (out_dir / name).exists()]
    if checkpoint.is_file():
        if not resume:
            raise UsageError(
                f"{checkpoint} exists: pass --resume to continue it, or choose another --out-dir"
            )
    elif earlier and not overwrite:
        what = "--resume: there is no checkpoint.pt to continue, but" if resume else "it"
        raise UsageError(
            f"{out_dir}: {what} holds an earlier run ({', '.join(earlier)}): pass --overwrite to start afresh "
            "there, or choose another --out-dir"
        )


RUN_FILES = ("log.csv", "decoder.safetensors", "decoder.pth")


def rng_state() -> dict:
    """Every generator's state as tensors and plain values, so a checkpoint loads with
    ``weights_only=True`` (no pickled objects: a checkpoint from elsewhere cannot run code)."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },  # fmt: skip
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict) -> None:
    python, numpy_state = state["python"], state["numpy"]
    if isinstance(python, dict):
        random.setstate((python["version"], tuple(python["state"].tolist()), python["gauss"]))
        keys = numpy_state["keys"].numpy().astype(np.uint32)
        np.random.set_state(
            (numpy_state["kind"], keys, numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached"])
        )
    else:  # a checkpoint of an earlier version: the tuples as Python and NumPy give them
        random.setstate(python)
        np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])


def load_checkpoint_file(path: Path) -> dict:
    """A checkpoint read with ``weights_only=True``. Earlier versions pickled NumPy's generator state
    as an array; only the globals that rebuild a plain array are allowed for them."""
    legacy = [np._core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    with torch.serialization.safe_globals(legacy):
        return torch.load(path, map_location="cpu", weights_only=True)


# -------------------------------------------------------------------------------------------
# The loop


@dataclass
class Distributed:
    """This process's place in a ``torchrun`` job (rank 0 of 1 when run plainly)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # set by start()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))

    def start(self, device: torch.device) -> None:
        self.device = device  # NCCL reduces CUDA tensors only
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on any (so all ranks stop at the same iteration)."""
        if self.world == 1:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        return bool(value.item())

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def stop(self) -> None:
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


class PairedBatches:
    """Content and style batches drawn together, closed together."""

    def __init__(self, contents: Iterator[Tensor], styles: Iterator[Tensor]) -> None:
        self.contents, self.styles = contents, styles

    def __next__(self) -> tuple[Tensor, Tensor]:
        return next(self.contents), next(self.styles)

    def close(self) -> None:
        self.contents.close()  # type: ignore[attr-defined]
        self.styles.close()  # type: ignore[attr-defined]


class Trainer:
    """One training run in ``out_dir``: ``checkpoint.pt``, ``log.csv``, ``config.json``, exports."""

    def __init__(self, config: TrainConfig, progress: bool = True, command: str | None = None) -> None:
        self.config = config
        self.command = command or shlex.join(sys.argv)  # what sittings.csv says started each sitting
        self.dist = Distributed.from_env()
        self.device = pick_device(config.device)
        if self.device.type == "cuda" and self.dist.world > 1:
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        check_style_recipe(config)
        if self.device.type == "cpu":
            keep_freed_memory()  # each step needs its peak again: a quarter of a step saved (devices.py)
        self.out_dir = Path(config.out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise AdainError(f"{self.out_dir}: exists and is not a directory (--out-dir)")
        self.progress = progress and self.dist.is_main
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        np.random.seed(config.seed)

        shard = (self.dist.rank, self.dist.world)  # each rank trains on its own slice of the data
        self.content = ImageDataset(config.content_dir, config.load_size, config.crop_size, shard)
        self.style = ImageDataset(config.style_dir, config.load_size, config.crop_size, shard)
        for data in (self.content, self.style):
            if len(data) < config.batch_size:
                raise AdainError(
                    f"{data.root}: {len(data)} images per process, fewer than --batch-size {config.batch_size}"
                )

        encoder, self.encoder_weights = weights.load_encoder(config.vgg)
        self.decoder = initial_decoder(config)
        matching = bool(config.decoder_match_weight or config.decoder_match)
        self.teacher = self._teacher() if config.distil_feedback or matching else None
        if self.teacher is not None:
            self.teacher.to(self.device).eval().requires_grad_(False)
        self.model = AdaINLoss(
            encoder, self.decoder, config.content_target, config.winograd,
            style_layer_weights=config.style_layer_weights, clamp_output=config.clamp_output,
            teacher=self.teacher if config.distil_feedback else None, teacher_feedback=config.distil_feedback,
            teacher_alpha=config.distil_alpha,
            match_layers=config.decoder_match_layers if matching else (), match_share=config.decoder_match,
        ).to(self.device)  # fmt: skip
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)
        self.autocast_dtype = pick_precision(config.precision, self.device)
        if not 0 <= config.ema < 1:
            raise AdainError(
                f"--ema must be at least 0 and below 1 (a decay such as 0.999), got {config.ema}"
            )
        # the moving average starts as a copy of the weights at the first step it sees (a run that
        # switches it on when resumed averages from there)
        self.averaged = (
            AveragedModel(self.decoder, multi_avg_fn=get_ema_multi_avg_fn(config.ema)) if config.ema else None
        )
        self.optimizer = torch.optim.Adam(self.decoder.parameters(), lr=config.lr)
        # Adam's step does not scale with the gradient, so a rate of its own for part of a tensor is
        # that part of the step scaled: (parameter, (multiplier - 1) where the rate differs, else 0)
        self.step_boost = []
        if config.new_channel_lr != 1:
            masks = new_channels(self.decoder)
            self.step_boost = [
                (param, masks[name].to(param.dtype) * (config.new_channel_lr - 1))
                for name, param in self.decoder.named_parameters()
                if masks[name].any()
            ]
        # fp16 gradients underflow without loss scaling; bf16 and fp32 need none (the scaler passes through)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast_dtype == torch.float16)
        if self.device.type == "cuda":
            # every batch has the same shape, so timing cuDNN's kernels once on the first pays off
            torch.backends.cudnn.benchmark = True
        self.dist.start(self.device)
        # DDP averages the decoder's gradients across ranks; with one process the model runs as it is
        self.forward = self.model
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.iteration = 0
        self.cached = self._cache_features(Path(config.feature_cache)) if config.feature_cache else None
        self._stop_signal: int | None = None
        # last, so a run that cannot start leaves no folder behind; before anything is announced
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if self.teacher is not None and not self.checkpoint_path.is_file():
                weights.export_decoder(self.teacher, self.teacher_path, {"role": "teacher"})

    @property
    def teacher_path(self) -> Path:
        return self.out_dir / "teacher.safetensors"

    def _teacher(self) -> Decoder:
        """The frozen decoder whose two-pass output ``--distil-feedback`` teaches, and whose ReLUs
        ``--decoder-match-weight``'s targets are measured in: the run's own copy when it has a
        checkpoint to resume (it keeps its teacher whatever ships meanwhile), else ``--teacher``,
        else ``--init-decoder``."""
        cfg = self.config
        kept = self.teacher_path.is_file() and self.checkpoint_path.is_file()
        source = self.teacher_path if kept else cfg.teacher or cfg.init_decoder
        if source is None:
            flag = (
                "--distil-feedback" if cfg.distil_feedback
                else "--decoder-match" if cfg.decoder_match else "--decoder-match-weight"
            )  # fmt: skip
            raise AdainError(f"{flag} needs a teacher: --teacher or --init-decoder")
        if not cfg.distil_feedback:
            return weights.decoder_from_file(source, cfg.decoder_norm)
        if not 0 < cfg.distil_feedback <= 1 or not 0 <= cfg.distil_alpha <= 1:
            raise AdainError(
                f"--distil-feedback must be above 0 and at most 1 and --distil-alpha from 0 to 1, got "
                f"{cfg.distil_feedback} and {cfg.distil_alpha}"
            )
        if cfg.content_target != "t":
            raise AdainError(
                "--distil-feedback replaces the content target: it does not go with --content-target fc"
            )
        return weights.decoder_from_file(source, cfg.decoder_norm)

    def describe(self) -> str:
        """One line on what this run does and where: for the terminal and the logs."""
        cfg, world = self.config, self.dist.world
        targets = (
            "the whole style images" if cfg.style_targets == "whole" else f"{features.STYLE_CROPS} crops each"
        )
        if cfg.style_scales:
            targets += f" at short sides {' and '.join(map(str, cfg.style_scales))} px"
        if not cfg.style_upscale:
            targets += ", smaller style images never upscaled"
        if cfg.style_jitter:
            targets += f", {defaults.STYLE_JITTERS[cfg.style_jitter]} at random"
        if cfg.style_mix:
            targets += f", {cfg.style_mix:.0%} of them blended with another"
            if cfg.style_mix_reach:
                targets += f" (weights from {-cfg.style_mix_reach:g} to {1 + cfg.style_mix_reach:g})"
        if cfg.style_gain:
            targets += f", each channel's statistics scaled by a random gain (log-std {cfg.style_gain:g})"
        if cfg.bold_styles:
            targets += f", styles drawn by their energy to the power {cfg.bold_styles:g}"
        processes = f" x {world} processes" if world > 1 else ""
        loss = ""
        if cfg.style_layer_weights:
            loss = f"style loss taps weighted {','.join(f'{w:g}' for w in cfg.style_layer_weights)}; "
        if cfg.clamp_output:
            loss += "losses of the output clamped to [0, 1]; "
        if cfg.decoder_width != 1:
            loss += f"decoder {cfg.decoder_width:g} times as wide as the paper's; "
        if cfg.new_channel_lr != 1:
            loss += f"its added channels at {cfg.new_channel_lr:g} times the lr; "
        if cfg.distil_feedback:
            loss += (
                f"content target: the teacher's two passes (feedback {cfg.distil_feedback:g}, alpha "
                f"{cfg.distil_alpha:g}; {self.teacher_path}); "
            )
        if cfg.decoder_match:
            loss += (
                f"decoder match on at ReLUs {','.join(map(str, cfg.decoder_match_layers))}, share "
                f"{cfg.decoder_match:g}, towards the teacher's ({self.teacher_path}); "
            )
        if cfg.decoder_match_weight:
            loss += (
                f"decoder match at ReLUs {','.join(map(str, cfg.decoder_match_layers))}, weight "
                f"{cfg.decoder_match_weight:g}, towards the teacher's ({self.teacher_path}); "
            )
        return (
            f"{describe_device(self.device)}{processes}, {dtype_name(self.autocast_dtype)}; "
            f"{self.content.total:,} content and {self.style.total:,} style images; "
            f"batch {cfg.batch_size}{processes} of {cfg.crop_size} px crops"
            f"{f' of cached features, style targets from {targets}' if self.cached else ''}; "
            f"{loss}{f'moving average of the weights, decay {cfg.ema:g}; ' if cfg.ema else ''}"
            f"iteration {self.iteration:,} of {cfg.max_iter:,}"
        )

    @property
    def skipped(self) -> int:
        """Training images found unreadable so far."""
        cached = sum(part.skipped for part in self.cached) if self.cached else 0
        return cached + self.content.skipped + self.style.skipped

    def _cache_features(self, cache_dir: Path) -> tuple[ContentFeatures, StyleStats]:
        """The content features and style statistics of the training images, from the cache or
        computed now (with this run's encoder and arithmetic) and kept there."""
        cfg, model = self.config, self.model
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):  # fmt: skip

            def on_device(x: Tensor) -> Tensor:
                return x.to(self.device, memory_format=self.memory_format)

            encoder_id = self.encoder_weights.id
            contents = features.cached_contents(self.content.files, cfg.load_size, lambda x: model.encode(on_device(x)),
                                                encoder_id, cache_dir, self.progress)  # fmt: skip
            crop = cfg.crop_size if cfg.style_targets == "crops" else None
            styles = features.cached_styles(self.style.files, cfg.load_size, lambda x: taps(model.encode, on_device(x)),
                                            encoder_id, cache_dir, crop, self.progress, cfg.style_scales,
                                            cfg.style_upscale, cfg.style_jitter)  # fmt: skip
            if cfg.decoder_match_weight or cfg.decoder_match:
                chosen = cfg.decoder_match_layers
                model_id = f"{encoder_id}|{weights.state_digest(self.teacher)}|{','.join(map(str, chosen))}"

                def measure(feat: Tensor) -> tuple[Tensor, Tensor]:
                    stats = decoder_statistics(self.teacher, feat)
                    return features.end_to_end([stats[k] for k in chosen])

                found = features.cached_decoder_styles(self.style.files, cfg.load_size,
                                                       lambda x: model.encode(on_device(x)), measure, model_id,
                                                       cache_dir, self.progress, cfg.style_upscale)  # fmt: skip
                styles = styles.joined(found)
        return contents, styles

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    @property
    def exported(self) -> Decoder:
        """The weights this run exports: the moving average with ``ema``, else the trained ones."""
        return self.averaged.module if self.averaged is not None else self.decoder  # type: ignore[return-value]

    def lr_at(self, iteration: int) -> float:
        return learning_rate(self.config, iteration)

    def save_checkpoint(self) -> None:
        """Rank 0 writes; the others wait, so every rank resumes from the same file."""
        if not self.dist.is_main:
            self.dist.barrier()
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint_file(
            {
                "decoder": self.decoder.state_dict(),
                **({"averaged": self.averaged.state_dict()} if self.averaged is not None else {}),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "iteration": self.iteration,
                "rng": rng_state(),
                "config": asdict(self.config),
            },
            self.checkpoint_path,
        )
        self.dist.barrier()

    def start_afresh(self) -> None:
        """Remove an earlier run's log and exported decoder (``--overwrite``): this run writes its own."""
        for name in RUN_FILES:
            (self.out_dir / name).unlink(missing_ok=True)

    def resume(self) -> bool:
        """Continue from ``checkpoint.pt`` if there is one; True if it did."""
        if not self.checkpoint_path.is_file():
            return False
        try:
            # Loaded onto the CPU (the RNG state must be a CPU tensor); the modules and the optimiser
            # move their state to the training device themselves, so a run can move between devices.
            ckpt = load_checkpoint_file(self.checkpoint_path)
            self._check_same_decoder(ckpt.get("config", {}))
            self.decoder.load_state_dict(ckpt["decoder"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if "scaler" in ckpt:
                self.scaler.load_state_dict(ckpt["scaler"])
            if self.averaged is not None and "averaged" in ckpt:
                self.averaged.load_state_dict(ckpt["averaged"])
        except pickle.UnpicklingError:
            raise AdainError(
                f"cannot resume from {self.checkpoint_path}: it holds pickled objects other than tensors and "
                "plain values, which adain does not load (they could run code)"
            ) from None
        except Exception as exc:
            raise AdainError(f"cannot resume from {self.checkpoint_path}: {files.first_line(exc)}") from None
        self.iteration = int(ckpt["iteration"])
        set_rng_state(ckpt["rng"])
        before, now = ckpt.get("config", {}), asdict(self.config)
        if "feature_cache" in before:
            before["style_targets"] = style_targets_of(before)
        if before:  # a flag newer than the checkpoint: its run had the flag's default
            before = {f.name: f.default for f in fields(TrainConfig)} | before
        changed = [f"{FLAGS.get(key, '--' + key.replace('_', '-'))} {before[key]} -> {now[key]}" for key in RECIPE
                   if key in before and before[key] != now[key]]  # fmt: skip
        if changed:  # allowed (a lower lr to finish, a bigger batch on a GPU), but never unnoticed
            warnings.warn(f"resuming with the recipe changed: {', '.join(changed)}", stacklevel=2)
        return True

    def step(self, content: Tensor, style: Tensor) -> tuple[float, float, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.iteration)
        content = content.to(self.device, memory_format=self.memory_format, non_blocking=True)
        # cached style statistics are (B, 2, 960), not images: no memory format
        style = (
            style.to(self.device, non_blocking=True)
            if self.cached
            else style.to(self.device, memory_format=self.memory_format, non_blocking=True)
        )
        with torch.autocast(
            self.device.type,
            dtype=self.autocast_dtype or torch.float32,
            enabled=self.autocast_dtype is not None,
        ):
            loss_c, loss_s, loss_m = self.forward(content, style, self.cached is not None)
        cfg = self.config
        # the log's total carries the match's term; its columns stay the paper's two
        loss = cfg.content_weight * loss_c + cfg.style_weight * loss_s + cfg.decoder_match_weight * loss_m
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        before = [param.detach().clone() for param, _ in self.step_boost]
        self.scaler.step(self.optimizer)
        with torch.no_grad():
            for (param, boost), was in zip(self.step_boost, before, strict=True):
                param.add_((param - was) * boost)
        self.scaler.update()
        if self.averaged is not None:
            self.averaged.update_parameters(self.decoder)
            for kept, running in zip(self.averaged.module.buffers(), self.decoder.buffers(), strict=True):
                kept.copy_(running)  # batch-norm statistics: the current ones, not averaged
        self.iteration += 1
        total, content_part, style_part = torch.stack([loss, loss_c, loss_s]).float().tolist()  # one sync
        return total, content_part, style_part

    def _check_same_decoder(self, before: dict) -> None:
        """A checkpoint's weights fit only the decoder they were trained in."""
        was = before.get("decoder_norm", "none"), before.get("decoder_width", 1.0)
        now = self.config.decoder_norm, self.config.decoder_width
        if was != now:
            raise AdainError(
                f"the run was trained with --decoder-norm {was[0]} --decoder-width {was[1]:g}, "
                f"not {now[0]} and {now[1]:g}"
            )

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stop_signal = signum

    @torch.no_grad()
    def preview(self, n: int = 2) -> Tensor:
        """A (3, H, W) grid: styles along the top, contents down the left, results inside; the same
        images every time (the first files of each folder, centre-cropped) so progress shows."""
        size = self.config.crop_size

        def fixed(data: ImageDataset) -> Tensor:
            return torch.cat([images.load_square(path, size) for path in data.files[:n]]).to(self.device)

        contents, styles = fixed(self.content), fixed(self.style)
        decoder = self.exported
        was_training = decoder.training
        decoder.eval()
        encoder = self.model.encoder
        rows = [torch.cat([torch.ones_like(contents[:1]), *styles.split(1)], dim=3)]
        for content in contents.split(1):
            outs = [decoder(adain(encoder(content), encoder(style))).clamp(0, 1) for style in styles.split(1)]
            rows.append(torch.cat([content, *outs], dim=3))
        decoder.train(was_training)
        return torch.cat(rows, dim=2)[0].float().cpu()

    def run(self, time_limit: float | None = None) -> Path | None:
        """Train up to ``max_iter`` (checkpointing as it goes); returns the exported decoder.

        With ``time_limit`` (seconds) the run stops before a step that would end past it, writes its
        checkpoint and returns None: ``resume()`` then ``run()`` continue it. This is how a long run
        is cut into chunks for machines lent a few minutes at a time.
        A signal (SIGINT, SIGTERM) also stops it at a checkpoint, raising KeyboardInterrupt."""
        cfg = self.config
        main = self.dist.is_main
        started, first_iteration = time.monotonic(), self.iteration
        started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if main:  # the folder was made in __init__
            files.write_text(self.out_dir / "config.json", _json(asdict(cfg)))
        # each (re)start and each rank draws its own data order, so a resumed run does not replay
        seed = cfg.seed + 2 * self.iteration + 1_000_003 * self.dist.rank
        pin = self.device.type == "cuda"
        if self.cached:
            batches = CachedBatches(*self.cached, cfg.batch_size, cfg.crop_size, seed, cfg.style_mix,
                                    cfg.style_mix_reach, cfg.style_gain, cfg.bold_styles)  # fmt: skip
        else:
            batches = PairedBatches(endless(self.content, cfg.batch_size, cfg.workers, seed, pin),
                                    endless(self.style, cfg.batch_size, cfg.workers, seed + 1, pin))  # fmt: skip
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        log = (
            TrainLog(self.out_dir, self.progress, cfg.max_iter, self.iteration, cfg.tensorboard)
            if main
            else None
        )
        try:
            self._loop(batches, log, started, time_limit)
        finally:
            batches.close()
            if log:
                log.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.save_checkpoint()
        finished = self.iteration >= cfg.max_iter
        if main:
            ended = "finished" if finished else "signal" if self._stop_signal is not None else "time limit"
            self._record_sitting(started_at, first_iteration, time.monotonic() - started, ended)
        if not finished:
            self.dist.stop()
            if self._stop_signal is None:
                return None
            raise KeyboardInterrupt(
                f"stopped by signal at iteration {self.iteration}; checkpoint saved, --resume continues"
            )
        return self._export()

    def _loop(self, batches, log: TrainLog | None, started: float, time_limit: float | None) -> None:
        """Steps until ``max_iter``, a signal, or (predicted from the last step) the time limit."""
        cfg, last = self.config, started
        while self.iteration < cfg.max_iter:
            now = time.monotonic()
            # the last iteration's time (with its logging and saving) predicts the next one's
            out_of_time = time_limit is not None and 2 * now - last - started > time_limit
            last = now
            if self.dist.any(self._stop_signal is not None or out_of_time):
                break
            losses = self.step(*next(batches))
            if log:
                log.update(self.iteration, losses, self.lr_at(self.iteration), cfg.log_every, cfg.max_iter)
            if log and self.iteration % cfg.image_every == 0:
                log.image("preview", self.preview(), self.iteration)
            if self.iteration % cfg.save_every == 0:
                self.save_checkpoint()
            if cfg.keep_every and self.iteration % cfg.keep_every == 0:
                self.save_snapshot()

    def _decoder_meta(self) -> dict[str, str]:
        """The metadata an exported decoder carries: its encoder, iterations and recipe."""
        cfg = self.config
        return {
            "encoder": self.encoder_weights.id,
            "iterations": str(self.iteration),
            "crop_size": str(cfg.crop_size),
            "batch_size": str(cfg.batch_size * self.dist.world),
            "content_target": cfg.content_target,
            "skipped_images": str(self.skipped),
            "weights": weights_label(cfg.ema),
            **weights.decoder_match_meta(cfg.decoder_match, cfg.decoder_match_layers),
        }

    def save_snapshot(self) -> None:
        """The decoder this run would export now, kept as ``snapshots/decoder-N.safetensors`` (N the
        iteration): the ingredients of later choices and means of weights (``scripts/average_decoders.py``),
        which the one checkpoint, overwritten every ``save_every``, cannot give. Rank 0 writes, as
        ``save_checkpoint``'s does; the ranks hold the same weights."""
        if not self.dist.is_main:
            return
        path = self.out_dir / "snapshots" / f"decoder-{self.iteration}.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        weights.export_decoder(self.exported, path, self._decoder_meta())

    def _export(self) -> Path:
        """The finished decoder as ``decoder.safetensors`` (with its recipe) and ``decoder.pth``."""
        exported = self.out_dir / "decoder.safetensors"
        if self.dist.is_main:
            weights.export_decoder(self.exported, self.out_dir / "decoder.pth")
            weights.export_decoder(self.exported, exported, self._decoder_meta())
        self.dist.barrier()
        self.dist.stop()
        return exported

    def _record_sitting(self, started_at: str, first: int, seconds: float, ended: str) -> None:
        """One row of ``sittings.csv`` per start of the run: the model card's wall time and commands."""
        path = self.out_dir / "sittings.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(SITTING_FIELDS)
            writer.writerow([
                started_at, first, self.iteration, f"{seconds:.1f}", ended,
                describe_device(self.device), dtype_name(self.autocast_dtype),
                self.command,
            ])  # fmt: skip


SITTING_FIELDS = ["started", "from_iteration", "to_iteration", "seconds", "ended", "device", "precision",
                  "command"]  # fmt: skip


def initial_decoder(config: TrainConfig) -> Decoder:
    """The decoder a run starts from: random, or ``--init-decoder``'s weights, widened
    function-preservingly (``nets.widen_decoder``) when they are narrower than ``--decoder-width``."""
    try:
        check_decoder_width(config.decoder_width)
    except ValueError as exc:
        raise AdainError(f"--decoder-width: {exc}") from None
    if config.new_channel_lr != 1 and config.decoder_width == 1:
        raise AdainError("--new-channel-lr applies to the channels --decoder-width adds, and the width is 1")
    if config.widen != "copy" and not config.init_decoder:
        raise AdainError(f"--widen {config.widen} widens an --init-decoder, and there is none")
    if not config.init_decoder:
        return Decoder(config.decoder_norm, config.decoder_width)
    start = weights.decoder_from_file(config.init_decoder, config.decoder_norm)
    if start.width > config.decoder_width:
        raise AdainError(
            f"--init-decoder {config.init_decoder} has width {start.width:g}, wider than --decoder-width "
            f"{config.decoder_width:g}: a decoder is widened, never narrowed"
        )
    if start.width == config.decoder_width:
        if config.widen != "copy":
            raise AdainError(
                f"--widen {config.widen}: --init-decoder {config.init_decoder} already has width "
                f"{start.width:g}, so there is nothing to widen"
            )
        return start
    return widen_decoder(start, config.decoder_width, seed=config.seed, mode=config.widen)


def decoder_of(config: dict) -> Decoder:
    """An untrained decoder of the shape a run's saved config (``config.json``, a checkpoint's) says."""
    return Decoder(config.get("decoder_norm", "none"), config.get("decoder_width", 1.0))


def decoder_state(checkpoint: dict, averaged: bool = True) -> dict[str, Tensor]:
    """A checkpoint's decoder weights: the moving average where the run kept one (``--ema``) and
    ``averaged`` is true, else the weights as trained."""
    if averaged and "averaged" in checkpoint:
        prefix = "module."  # AveragedModel holds the decoder as .module, beside its step count
        return {k.removeprefix(prefix): v for k, v in checkpoint["averaged"].items() if k.startswith(prefix)}
    return checkpoint["decoder"]


def weights_label(ema: float | None) -> str:
    """How an exported decoder's weights were taken, under the metadata key ``weights``: the one
    wording for the trainer's export and ``scripts/package_decoder.py``. ``ema``: the decay of the
    moving average exported, or None/0 for the weights as trained."""
    return f"moving average, decay {ema:g}" if ema else "as trained"


def check_style_recipe(config: TrainConfig) -> None:
    """The style flags that only the feature cache implements (the image loader has no such options)."""
    if config.style_targets == "whole" and not config.feature_cache:
        raise AdainError(
            "--style-targets whole needs --feature-cache (each style image is encoded whole once)"
        )

    def needs_cached_crops(flag: str) -> None:
        if not config.feature_cache or config.style_targets != "crops":
            raise AdainError(f"{flag} needs --feature-cache and style targets from crops")

    if config.style_scales:
        needs_cached_crops("--style-scales")
        small = [size for size in config.style_scales if size < config.crop_size]
        if small:
            raise AdainError(f"--style-scales {small[0]} is smaller than --crop-size {config.crop_size}")
    if not config.style_upscale and not config.feature_cache:
        raise AdainError("--no-style-upscale needs --feature-cache")
    if config.style_jitter not in ("", *defaults.STYLE_JITTERS):
        choices = ", ".join(defaults.STYLE_JITTERS)
        raise AdainError(f"--jitter-styles must be one of {choices}, not {config.style_jitter!r}")
    if config.style_jitter:
        needs_cached_crops("--jitter-styles")
    if not 0.0 <= config.style_mix <= 1.0:
        raise AdainError(f"--mix-styles must be between 0 and 1, not {config.style_mix}")
    if config.style_mix and not config.feature_cache:
        raise AdainError("--mix-styles needs --feature-cache (it blends cached style statistics)")
    if config.style_mix_reach and not config.style_mix:
        raise AdainError("--mix-reach widens the blends of --mix-styles, which is 0")
    for flag, value, what in (("--mix-reach", config.style_mix_reach, None),
                              ("--style-gain", config.style_gain, "scales"),
                              ("--bold-styles", config.bold_styles, "weighs styles by")):  # fmt: skip
        if value < 0:
            raise AdainError(f"{flag} must be at least 0, not {value}")
        if value and what and not config.feature_cache:
            raise AdainError(f"{flag} needs --feature-cache (it {what} cached style statistics)")
    if config.decoder_match_weight < 0:
        raise AdainError(f"--decoder-match-weight must be at least 0, not {config.decoder_match_weight}")
    if not 0 <= config.decoder_match <= 1:
        raise AdainError(f"--decoder-match must be from 0 to 1, not {config.decoder_match}")
    if config.decoder_match and config.decoder_match_weight:
        raise AdainError(
            "--decoder-match and --decoder-match-weight do not go together: the match either moves the "
            "activations (the first) or is learnt as a loss (the second)"
        )
    for flag, value in (("--decoder-match-weight", config.decoder_match_weight),
                        ("--decoder-match", config.decoder_match)):  # fmt: skip
        if not value:
            continue
        check_layers(config.decoder_match_layers)
        if not config.feature_cache or config.style_targets != "whole":
            raise AdainError(
                f"{flag} needs --feature-cache and --style-targets whole (its targets are "
                "measured decoding each whole style image once)"
            )
        if config.style_gain:
            raise AdainError(f"{flag} does not go with --style-gain (no gain for the decoder's targets)")
    weights = config.style_layer_weights
    if weights and (len(weights) != len(TAPS) or min(weights) < 0 or not any(weights)):
        raise AdainError(
            f"--style-layer-weights takes {len(TAPS)} numbers ({', '.join(TAPS)}), none negative "
            f"and not all 0, not {','.join(f'{w:g}' for w in weights)}"
        )


def style_targets_of(config: dict) -> str:
    """A run's ``style_targets`` from its saved config; runs from before the flag used whole-image
    targets whenever they used the feature cache, and crop targets otherwise."""
    return config.get("style_targets", "whole" if config.get("feature_cache") else "crops")


def read_log(path: str | Path, offset: int = 0) -> list[dict[str, float]]:
    """The rows of a run's ``log.csv`` as numbers, iterations shifted by ``offset`` (for a run that
    continued another's decoder)."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} | {"iteration": int(row["iteration"]) + offset}
                for row in csv.DictReader(f)]  # fmt: skip


def drop_rows_after(log: Path, iteration: int) -> None:
    """Cut ``log.csv`` back to the checkpoint a run resumes from: a run killed between checkpoints
    logged iterations that the resumed run will do and log again."""
    lines = log.read_text().splitlines(keepends=True)
    kept = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) <= iteration]
    if len(kept) < len(lines):
        files.write_text(log, "".join(kept))


class TrainLog:
    """The progress bar, ``log.csv`` (iteration, losses, lr, seconds since this start), preview
    grids in ``previews/`` and, where the tensorboard package is installed, the same scalars and
    previews in ``tensorboard/``."""

    def __init__(
        self, out_dir: Path, progress: bool, total: int, initial: int, tensorboard: bool = True
    ) -> None:
        from tqdm import tqdm

        self.previews = out_dir / "previews"
        path = out_dir / "log.csv"
        new = not path.exists()
        if not new:
            drop_rows_after(path, initial)
        self.board = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.board = SummaryWriter(str(out_dir / "tensorboard"), purge_step=initial + 1)
            except ImportError:
                pass
        self.file = open(path, "a", newline="")  # noqa: SIM115 - closed in close()
        self.writer = csv.writer(self.file)
        if new:
            self.writer.writerow(["iteration", "loss", "content", "style", "lr", "seconds"])
        self.bar = tqdm(total=total, initial=initial, disable=not progress, desc="train", unit="it",
                        dynamic_ncols=True)  # fmt: skip
        self.start = time.perf_counter()

    def update(
        self, iteration: int, losses: tuple[float, float, float], lr: float, every: int, last: int
    ) -> None:
        self.bar.update(1)
        if iteration % every and iteration != last:
            return
        loss, loss_c, loss_s = losses
        self.bar.set_postfix(loss=f"{loss:.3f}", content=f"{loss_c:.3f}", style=f"{loss_s:.3f}")
        seconds = time.perf_counter() - self.start
        self.writer.writerow(
            [iteration, f"{loss:.5f}", f"{loss_c:.5f}", f"{loss_s:.5f}", f"{lr:.3e}", f"{seconds:.1f}"]
        )
        self.file.flush()
        if self.board:
            for name, value in (
                ("loss/total", loss),
                ("loss/content", loss_c),
                ("loss/style", loss_s),
                ("lr", lr),
            ):
                self.board.add_scalar(name, value, iteration)

    def image(self, tag: str, image: Tensor, iteration: int) -> None:
        self.previews.mkdir(exist_ok=True)
        # overwrite: a run resumed from an earlier checkpoint redoes the iterations after it
        images.save_image(images.to_pil(image), self.previews / f"{iteration:07d}.jpg", overwrite=True)
        if self.board:
            self.board.add_image(tag, image, iteration)
            self.board.flush()

    def close(self) -> None:
        self.bar.close()
        self.file.close()
        if self.board:
            self.board.close()


def _json(obj: object) -> str:
    import json

    return json.dumps(obj, indent=2) + "\n"
