"""``keep_freed_memory``: glibc serves large blocks from its heap instead of mapping each afresh."""

import ctypes
import platform

import pytest
import torch

from adain.devices import keep_freed_memory
from adain.train import TrainConfig, Trainer

from .conftest import SHARED_VGG, make_image

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]  # fmt: skip


def mapped_bytes() -> int:
    """Bytes glibc holds in blocks it mapped on their own (``mallinfo2().hblkhd``)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    return libc.mallinfo2().hblkhd


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_large_blocks_come_from_the_heap_only_while_freed_memory_is_kept():
    size = 64 * 2**20  # a float32 4 x 64 x 256 x 256 activation
    try:
        assert keep_freed_memory(False)
        before = mapped_bytes()
        block = torch.empty(size, dtype=torch.uint8)
        assert mapped_bytes() - before >= size  # mapped on its own, unmapped when freed
        del block
        assert keep_freed_memory(True)
        before = mapped_bytes()
        block = torch.empty(size, dtype=torch.uint8)
        assert mapped_bytes() - before < size  # from the heap, kept there when freed
        del block
    finally:
        keep_freed_memory(False)


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_a_cpu_trainer_keeps_freed_memory(tmp_path):
    for folder in ("c", "s"):
        (tmp_path / folder).mkdir()
        for i in range(2):
            make_image(tmp_path / folder / f"{i}.png", (40, 40), seed=i)
    keep_freed_memory(False)
    try:
        vgg = str(SHARED_VGG) if SHARED_VGG.is_file() else None
        Trainer(TrainConfig(str(tmp_path / "c"), str(tmp_path / "s"), str(tmp_path / "run"), batch_size=2, vgg=vgg,
                            device="cpu", workers=0), progress=False)  # fmt: skip
        before = mapped_bytes()
        block = torch.empty(64 * 2**20, dtype=torch.uint8)
        assert mapped_bytes() - before < 64 * 2**20
        del block
    finally:
        keep_freed_memory(False)
