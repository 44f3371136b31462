"""Which device and which arithmetic: shared by inference and training."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import platform
import threading
from collections.abc import Iterator
from pathlib import Path

import torch

from .errors import AdainError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` is CUDA where there is a GPU, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise AdainError(f"unknown device {device!r} (choose from auto, cpu, cuda)") from None
    if device.type not in ("cpu", "cuda"):
        raise AdainError(f"unsupported device {str(device)!r} (choose from auto, cpu, cuda)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AdainError("--device cuda asked for, but no CUDA GPU is available")
    return device


def pick_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: fp16/bf16 on CUDA; bf16 on a CPU that has native bf16 (AVX-512 BF16 or
    AMX) where it measured faster than fp32 (``backend.cpu_prefers_bf16``, timed once per machine);
    else none (plain fp32: emulated bf16 on older CPUs is slower than fp32)."""
    if precision not in PRECISIONS:
        raise AdainError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    if precision == "fp32":
        return None
    if precision in ("bf16", "fp16"):
        return torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if not cpu_has_native_bf16():
        return None
    from .backend import cpu_prefers_bf16  # it builds the networks to time them

    return torch.bfloat16 if cpu_prefers_bf16() else None


def dtype_name(autocast_dtype: torch.dtype | None) -> str:
    """``float32``, ``bfloat16`` or ``float16``: the arithmetic that ``pick_precision``'s answer means."""
    return str(autocast_dtype or torch.float32).removeprefix("torch.")


def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_name() -> str:
    """The CPU's model as /proc/cpuinfo names it (else what ``platform`` knows)."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            return next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), name
            )
    except OSError:
        return name


def describe_device(device: torch.device) -> str:
    """A GPU's name, or the CPU's model and the threads PyTorch uses: what a timing was measured on."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU: {cpu_name()}, {torch.get_num_threads()} threads"


# glibc's malloc hands a freed block over M_MMAP_THRESHOLD straight back to the kernel (munmap), and
# its threshold never rises above 32 MiB by itself. A training step's large activations (4 x 64 x
# 256 x 256 in float32 is 64 MiB) are then mapped, faulted in, zeroed and unmapped afresh each step:
# about a quarter of a CPU step at 256 px crops. Raised, the blocks stay in the heap and are reused.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
GLIBC_DEFAULT_MMAP_CEILING = 32 * 2**20  # the highest the dynamic threshold goes (64-bit glibc)
KEEP_FREED_UP_TO = 2**30


@functools.cache
def glibc() -> ctypes.CDLL | None:
    """The C library where it is glibc (whose malloc the functions here tune), else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def keep_freed_memory(keep: bool = True) -> bool:
    """For the rest of the process, let glibc keep freed blocks up to 1 GiB for reuse (``keep``),
    or never (glibc's own ceiling, 32 MiB, even during inference calls: a process that must stay
    small). Kept, its memory stays near its peak instead of being returned between steps: right for
    a training loop, which needs that peak every step. Without a call, inference keeps freed memory
    only while a call runs (``freed_memory_kept``). Returns whether it took effect (glibc only;
    elsewhere nothing changes)."""
    global _kept_for_process
    with _kept_lock:
        _kept_for_process = keep
        took = _set_thresholds(keep)
        if not keep:  # what was kept until now is handed back too
            release_freed_memory()
        return took


@contextlib.contextmanager
def freed_memory_kept() -> Iterator[None]:
    """Freed memory kept for reuse while the block runs, then the threshold put back and the heap
    trimmed. One inference call frees and allocates activations of the same large sizes layer after
    layer (and tile after tile): kept, they are not mapped, faulted in and zeroed afresh each time
    (1.2-1.4x faster from 1024² to 8K, README "Peak memory"), and after the call an idle process
    (a server between requests) holds no more than before. Nested and concurrent blocks are counted;
    a process that has chosen for good (``keep_freed_memory``: a trainer, or never) is left so."""
    global _kept_scopes
    with _kept_lock:
        _kept_scopes += 1
        if _kept_scopes == 1 and _kept_for_process is None:
            _set_thresholds(True)
    try:
        yield
    finally:
        with _kept_lock:
            _kept_scopes -= 1
            if _kept_scopes == 0 and _kept_for_process is not True:  # a trainer keeps its heap
                if _kept_for_process is None:
                    _set_thresholds(False)
                release_freed_memory()


def release_freed_memory() -> None:
    """Give the heap pages that freed tensors left behind back to the system (glibc only).

    Tiles of different sizes, freed from several threads, leave holes in glibc's heaps that it keeps
    mapped; over the dozens of tiles of a large image the resident size crept up by hundreds of MB
    over the budget (``benchmarks/memory.py``). Trimming after each tile costs about a millisecond.
    """
    libc = glibc()
    if libc is not None:
        libc.malloc_trim(0)


_kept_lock = threading.Lock()
_kept_for_process: bool | None = None  # None: kept only inside freed_memory_kept
_kept_scopes = 0


def _set_thresholds(keep: bool) -> bool:
    libc = glibc()
    if libc is None:
        return False
    threshold = KEEP_FREED_UP_TO if keep else GLIBC_DEFAULT_MMAP_CEILING
    trim = KEEP_FREED_UP_TO if keep else 2 * GLIBC_DEFAULT_MMAP_CEILING
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim))
