"""Throughput and p99 under a real server: gunicorn (2 workers, gthread, 4 threads) and wrk, on 127.0.0.1.

Each variant gets the same bounded load (``wrk -t2 -c64 -d<seconds>s``; with
only 16 keep-alive connections one worker could end up holding most of them, and
req/s then varied by half from one server start to the next) in
interleaved rounds, alone on the machine (its server is started for the
measurement and stopped after); the table shows the median req/s and p99 and
their ratios to the bare app.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

import httpx

from .peers import VARIANTS

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(variant: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "WSGIMON_BENCH_VARIANT": variant, "WSGIMON_STORAGE": "memory://"}
    if variant == "wsgimon (sqlite)":
        env["WSGIMON_STORAGE"] = f"sqlite:////tmp/wsgimon-bench-{port}.sqlite3"
    command = [sys.executable, "-m", "gunicorn", "-w", "2", "-k", "gthread", "--threads", "4"]
    command += ["-b", f"127.0.0.1:{port}", "bench.serve:app"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/hello", timeout=1)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"gunicorn did not start for {variant}")


def _wrk(url: str, seconds: int) -> tuple[float, float]:
    out = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency", url + "/hello"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return rate, float(value) * _UNITS[unit]


def measure(rounds: int, seconds: int) -> dict[str, list[tuple[float, float]]] | None:
    """Interleaved rounds; only the variant being measured runs (some peers keep busy threads)."""
    if shutil.which("wrk") is None:
        return None
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    for _ in range(rounds):
        for name in VARIANTS:
            try:
                process, url = _serve(name)
            except RuntimeError:
                continue
            try:
                _wrk(url, 1)  # warm
                results[name].append(_wrk(url, seconds))
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(20)
    return {name: samples for name, samples in results.items() if samples}


def render(results: dict[str, list[tuple[float, float]]] | None) -> str:
    if results is None:
        return "(wrk is not installed: `apt-get install wrk`)"
    bare_rate = statistics.median(r for r, _ in results["bare Flask"])
    bare_p99 = statistics.median(p for _, p in results["bare Flask"])
    lines = [
        "| variant | req/s (median) | ratio to bare | p99 ms | p99 ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, samples in results.items():
        rate = statistics.median(r for r, _ in samples)
        p99 = statistics.median(p for _, p in samples)
        lines.append(f"| {name} | {rate:,.0f} | {rate / bare_rate:.2f} | {p99:.1f} | {p99 / bare_p99:.2f} |")
    return "\n".join(lines)
