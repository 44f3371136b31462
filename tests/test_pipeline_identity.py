"""The restructured pipeline gives bit-identical images to the one it replaced.

``tests/data/pipeline_reference.json`` holds the SHA-256 of each 8-bit output of
``scripts/make_pipeline_reference.py`` as run at the commit it names (before the restructuring),
in fp32 on this project's machine: the plain network, the fast one (Winograd kernels), every
control, forced tiles and a batch of frames with the video path's smoothing hook.
"""

import importlib.util
import json
from pathlib import Path

from .conftest import needs_shared

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = json.loads((Path(__file__).parent / "data" / "pipeline_reference.json").read_text())


def _script():
    spec = importlib.util.spec_from_file_location(
        "make_pipeline_reference", ROOT / "scripts" / "make_pipeline_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cpu() -> tuple[str, str]:
    """(vendor, instruction set oneDNN picks its fp32 convolutions by: avx512, avx2 or other)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "other", "other"
    flags = text.split()
    vendor = next(
        (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("vendor_id")), "other"
    )
    return vendor, "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "other"


@needs_shared
def test_fp32_outputs_are_bit_identical_to_the_reference_commit():
    script = _script()
    outputs = script.cases(REFERENCE["precision"])
    assert set(outputs) == set(REFERENCE["fingerprints"])
    expected = dict(REFERENCE["fingerprints"])
    # the reference commit's outputs on this kind of CPU, where they were recorded (session 12)
    vendor, isa = cpu()
    this_cpu = REFERENCE.get("fingerprints_by_cpu", {}).get(f"{vendor}/{isa}")
    plain = REFERENCE["plain_by_cpu"].get(isa)
    if this_cpu is not None:
        expected = dict(this_cpu)
    elif plain is None:  # no reference for this instruction set: the other ten still must match
        del outputs["plain"]
    else:
        expected["plain"] = plain
    changed = [name for name, img in outputs.items() if script.fingerprint(img) != expected[name]]
    assert not changed, f"outputs differ from commit {REFERENCE['commit'][:7]}: {', '.join(changed)}"
