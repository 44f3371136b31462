"""``keep_freed_memory``: glibc serves large blocks from its heap instead of mapping each afresh.

Each check runs in a fresh interpreter: in the test process, free chunks left by earlier tests
(a trainer keeps up to 1 GiB) could serve a block whatever the threshold says.
"""

import json
import platform
import subprocess
import sys
import textwrap

import pytest

from .conftest import SHARED_VGG, make_image

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
BLOCK = 64 * 2**20  # a float32 4 x 64 x 256 x 256 activation
# A probe of BLOCK made while freed memory is kept leaves a free chunk of that size in the heap, and
# malloc serves a request from its free lists before it looks at the threshold: a later BLOCK could
# come from there whatever the setting (2 runs in 60 under load). Probes after a scope ask for more.
LARGER = 2 * BLOCK

MEASURE = textwrap.dedent(
    """
    import ctypes, json, sys
    import torch
    from adain.devices import keep_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                    "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2

    def newly_mapped(size):
        '''Bytes glibc mapped on their own (mallinfo2().hblkhd) for one block of ``size``.'''
        before = libc.mallinfo2().hblkhd
        block = torch.empty(size, dtype=torch.uint8)
        mapped = libc.mallinfo2().hblkhd - before
        del block
        return mapped
    """
)


def measure(body: str) -> dict:
    """Run ``body`` after ``MEASURE`` in a fresh interpreter; what it prints last, as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE + textwrap.dedent(body)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_large_blocks_come_from_the_heap_only_while_freed_memory_is_kept():
    found = measure(
        f"""
        default = (keep_freed_memory(False), newly_mapped({BLOCK}))
        kept = (keep_freed_memory(True), newly_mapped({BLOCK}))
        print(json.dumps({{"default": default, "kept": kept}}))
        """
    )
    assert found["default"][0] and found["default"][1] >= BLOCK  # mapped on its own, unmapped when freed
    assert found["kept"][0] and found["kept"][1] < BLOCK  # from the heap, kept there when freed


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_a_cpu_trainer_keeps_freed_memory(tmp_path):
    for folder in ("c", "s"):
        (tmp_path / folder).mkdir()
        for i in range(2):
            make_image(tmp_path / folder / f"{i}.png", (40, 40), seed=i)
    vgg = str(SHARED_VGG) if SHARED_VGG.is_file() else None
    found = measure(
        f"""
        from adain.train import TrainConfig, Trainer
        keep_freed_memory(False)
        Trainer(TrainConfig({str(tmp_path / "c")!r}, {str(tmp_path / "s")!r}, {str(tmp_path / "run")!r},
                            batch_size=2, vgg={vgg!r}, device="cpu", workers=0), progress=False)
        print(json.dumps({{"mapped": newly_mapped({BLOCK})}}))
        """
    )
    assert found["mapped"] < BLOCK


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_freed_memory_is_kept_only_inside_the_block_and_nested_blocks_count():
    found = measure(
        f"""
        from adain.devices import freed_memory_kept
        with freed_memory_kept():
            with freed_memory_kept():
                inner = newly_mapped({BLOCK})
            outer = newly_mapped({BLOCK})  # the inner block's end leaves the outer one's setting
        after = newly_mapped({LARGER})
        keep_freed_memory(True)  # a trainer's, for good: a block's end leaves it
        with freed_memory_kept():
            pass
        trainer = newly_mapped({BLOCK})
        keep_freed_memory(False)  # never, not even inside a block
        with freed_memory_kept():
            never = newly_mapped({LARGER})
        print(json.dumps({{"inner": inner, "outer": outer, "after": after, "trainer": trainer, "never": never}}))
        """
    )
    assert found["inner"] < BLOCK and found["outer"] < BLOCK and found["trainer"] < BLOCK
    assert found["after"] >= LARGER and found["never"] >= LARGER


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_a_stylizer_call_keeps_freed_memory_while_it_runs(tmp_path):
    make_image(tmp_path / "c.png", (48, 40), seed=1)
    make_image(tmp_path / "s.png", (40, 40), seed=2)
    vgg = str(SHARED_VGG) if SHARED_VGG.is_file() else None
    found = measure(
        f"""
        from adain import Stylizer
        during = []
        def cancelled():  # polled before each network pass, so inside the call
            during.append(newly_mapped({BLOCK}))
            return False
        s = Stylizer.from_pretrained(vgg={vgg!r}, device="cpu", cancelled=cancelled)
        import adain.devices
        trims, trim = [], adain.devices.release_freed_memory
        adain.devices.release_freed_memory = lambda: (trims.append(1), trim())
        s({str(tmp_path / "c.png")!r}, {str(tmp_path / "s.png")!r})
        print(json.dumps({{"during": during, "after": newly_mapped({LARGER}), "trims": len(trims)}}))
        """
    )
    assert found["during"] and all(mapped < BLOCK for mapped in found["during"])
    assert found["after"] >= LARGER  # the threshold put back when the call returns
    # one scope for the whole call: the style's encoding and the render share the kept heap
    assert found["trims"] == 1
