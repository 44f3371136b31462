"""Bounded bursts against ``adain serve`` on 127.0.0.1 (default settings): how it holds under load.

Each burst sends N requests at once, mixing good stylize requests, 5000x5000 flat PNGs (84 KB on
the wire, 25 MP decoded), 1x5000 strips, style uploads and clients that leave half a second after
sending. It reports the status counts, the p50/p99 latency of accepted requests, how fast 503s are
answered, how soon an abandoned request's slot is free again, and the server's peak RSS
(VmHWM, reset before each burst).

    python benchmarks/serve_soak.py [--bursts 30,100] [--out benchmarks/results/serve_soak.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from PIL import Image
from results_file import add_out_flags, parse_args, write_results

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("good", "flat_5000", "strip_1x5000", "style_upload", "abandoned")


def png(size: tuple[int, int], color=(120, 90, 60), noise: bool = False) -> bytes:
    img = Image.new("RGB", size, color)
    if noise:
        img = Image.effect_noise(size, 60).convert("RGB")
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


PHOTO, ART = png((480, 360), noise=True), png((256, 256), (30, 60, 200), noise=True)
FLAT, STRIP = png((5000, 5000)), png((1, 5000))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(pid: int) -> None:
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM (Linux)


def wait_idle(port: int, limit: float = 120) -> float:
    """Seconds until the server has nothing running or waiting (the burst's work drained)."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()
        if not health["busy"] and not health["waiting"]:
            break
        time.sleep(0.1)
    return time.perf_counter() - start


async def request(http: httpx.AsyncClient, kind: str) -> tuple[str, int, float]:
    start = time.perf_counter()
    if kind == "style_upload":
        response = await http.post("/v1/styles", files={"style": ("art.png", ART, "image/png")})
    else:
        content = {"good": PHOTO, "flat_5000": FLAT, "strip_1x5000": STRIP}[kind]
        files = {"content": ("c.png", content, "image/png"), "style": ("s.png", ART, "image/png")}
        response = await http.post("/v1/stylize", files=files)
    return kind, response.status_code, time.perf_counter() - start


async def abandon(port: int) -> tuple[str, int, float]:
    """A client that sends a request for a large result and leaves after half a second."""
    body = (b"--zzz\r\nContent-Disposition: form-data; name=\"content\"; filename=\"c.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + PHOTO + b"\r\n--zzz\r\nContent-Disposition: form-data; "
            b"name=\"style\"; filename=\"s.png\"\r\nContent-Type: image/png\r\n\r\n" + ART +
            b"\r\n--zzz\r\nContent-Disposition: form-data; name=\"content_size\"\r\n\r\n4096\r\n--zzz--\r\n")  # fmt: skip
    head = (f"POST /v1/stylize HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=zzz\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + body)
    await writer.drain()
    await asyncio.sleep(0.5)
    writer.close()
    return "abandoned", 0, 0.5


async def burst(port: int, n: int, seed: int) -> list[tuple[str, int, float]]:
    rng = random.Random(seed)
    kinds = [KINDS[i % len(KINDS)] for i in range(n)]
    rng.shuffle(kinds)
    limits = httpx.Limits(max_connections=n + 10)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300, limits=limits) as http:
        jobs = [abandon(port) if kind == "abandoned" else request(http, kind) for kind in kinds]
        return await asyncio.gather(*jobs)


async def slot_free_after_abandon(port: int) -> float:
    """Seconds from an abandoning client's leaving until a small request is served."""
    await abandon(port)
    left = time.perf_counter()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        files = {"content": ("c.png", ART, "image/png"), "style": ("s.png", ART, "image/png")}
        while time.perf_counter() - left < 60:
            response = await http.post("/v1/stylize", files=files, data={"content_size": "256"})
            if response.status_code == 200:
                return time.perf_counter() - left
            await asyncio.sleep(0.05)
    return float("inf")


def summarise(results: list[tuple[str, int, float]]) -> dict:
    accepted = sorted(s for _, code, s in results if code in (200, 201))
    busy = sorted(s for _, code, s in results if code == 503)
    counts: dict[str, dict[str, int]] = {}
    for kind, code, _ in results:
        counts.setdefault(kind, {}).setdefault(str(code), 0)
        counts[kind][str(code)] += 1

    def pct(values: list[float], q: float) -> float | None:
        return values[min(len(values) - 1, int(q * len(values)))] if values else None

    return {
        "status_counts": counts,
        "accepted_p50_s": pct(accepted, 0.5),
        "accepted_p99_s": pct(accepted, 0.99),
        "busy_503_median_s": statistics.median(busy) if busy else None,
        "busy_503_max_s": busy[-1] if busy else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bursts", default="30,100", help="concurrent requests per burst")
    add_out_flags(parser, "serve_soak.json")
    args = parse_args(parser)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "adain", "serve", "--port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        result = {"bursts": [], "server": "adain serve, default settings", "cpus": os.cpu_count()}
        for n in (int(x) for x in args.bursts.split(",")):
            reset_peak(server.pid)
            started = time.perf_counter()
            outcome = summarise(asyncio.run(burst(port, n, seed=n)))
            drained = wait_idle(port)  # the abandoned requests stop and leave nothing running
            outcome.update({"requests": n, "seconds": time.perf_counter() - started, "drained_after_s": drained,
                            "peak_rss_mb": peak_rss_mb(server.pid)})  # fmt: skip
            print(n, outcome, flush=True)
            result["bursts"].append(outcome)
        reset_peak(server.pid)
        result["abandoned_slot_free_s"] = asyncio.run(slot_free_after_abandon(port))
        result["peak_rss_mb_idle_then_abandon"] = peak_rss_mb(server.pid)
        print("slot free after an abandoned request:", result["abandoned_slot_free_s"])
    finally:
        server.terminate()
        server.wait(timeout=30)
    write_results(args.out, result)


if __name__ == "__main__":
    main()
