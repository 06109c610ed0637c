"""Instructions per request on the request thread, counted by valgrind's callgrind.

Timings on a shared 2-core machine move by a few per cent between runs; instruction counts do
not. Each variant serves N and then M requests in a fresh interpreter under callgrind with one
output file per thread; the request thread's difference divided by M - N is what one request
costs it (start-up and imports cancel out; folding the records, a background thread's work, is not counted).

    python -m bench.instructions            # a plain WSGI app and a Flask app, bare and wrapped

Needs ``valgrind`` (Debian's package). Each variant checks that its requests were answered 2xx
and, wrapped, counted back from the store, and fails loudly otherwise.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# argv: the wsgimon tree to import ("-": this one), "module:function", then the function's arguments
# (strings). The bench and the tests' helpers always come from this tree, so that another commit's
# wsgimon is measured by the same script.
_PROGRAM = """
import importlib
import sys
if sys.argv[1] != "-":
    sys.path.insert(0, sys.argv[1])
    import wsgimon
    del sys.path[0]
    print("wsgimon from", wsgimon.__file__, file=sys.stderr)
module, function = sys.argv[2].split(":")
getattr(importlib.import_module(module), function)(*sys.argv[3:])
"""


def serve(kind: str, wrapped: bool | str, requests: int | str) -> None:
    """Run ``requests`` requests on the calling (main) thread, like a server; checks them."""
    if isinstance(wrapped, str):
        wrapped = wrapped == "wrapped"
    requests = int(requests)
    from tests.helpers import call
    from wsgimon import MonitorMiddleware

    if kind == "flask":
        from flask import Flask

        flask_app = Flask("instructions")
        flask_app.add_url_rule("/hello", "hello", lambda: "hello")
        app = flask_app.wsgi_app
    else:

        def app(environ: dict[str, object], start_response: object) -> list[bytes]:
            start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
            return [b"hello"]

    monitor = None
    if wrapped:
        monitor = MonitorMiddleware(app, storage="memory://", flush_interval=60, slow_request_ms=0)
        app = monitor
    # What was allocated before the requests (modules, the app) is frozen out of the collector's
    # scans: a full collection's cost grows with everything imported, which would otherwise show
    # up as a per-request cost of whatever imports more.
    gc.collect()
    gc.freeze()
    for _ in range(requests):
        result = call(app, "/hello")
        if result.status is None or not result.status.startswith("200"):
            raise SystemExit(f"instructions bench: a request answered {result.status!r}")
    if monitor is not None:
        # The fold and the write belong to the flusher thread: counted apart from the requests.
        flusher = threading.Thread(target=monitor.flush)
        flusher.start()
        flusher.join()
        counted = monitor.store.overall(None, 0).count
        if counted != requests:
            raise SystemExit(f"instructions bench: {counted} of {requests} requests counted")
        monitor.close()


@dataclass(frozen=True)
class Count:
    variant: str
    per_request: float


def _main_thread_instructions(kind: str, wrapped: bool, requests: int, wsgimon_root: Path | None = None) -> int:
    return main_thread_instructions(
        "bench.instructions:serve", [kind, "wrapped" if wrapped else "bare", str(requests)], wsgimon_root
    )


def main_thread_instructions(entry: str, arguments: list[str], wsgimon_root: Path | None = None) -> int:
    """Instructions run by the main thread of ``entry(*arguments)`` ("module:function") under callgrind.

    ``wsgimon_root``: a checkout whose ``wsgimon`` is imported instead of this tree's (checked).
    """
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "callgrind.out"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
        env.pop("PYTHONDEVMODE", None)
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--separate-threads=yes",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-c",
                _PROGRAM,
                "-" if wsgimon_root is None else str(wsgimon_root),
                entry,
                *arguments,
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if done.returncode != 0:
            raise SystemExit(f"instructions bench: valgrind failed: {done.stderr[-2000:]}")
        if wsgimon_root is not None and f"wsgimon from {Path(wsgimon_root).resolve()}/" not in done.stderr:
            raise SystemExit(f"instructions bench: wsgimon was not imported from {wsgimon_root}: {done.stderr[-2000:]}")
        main = Path(f"{out}-01")
        match = re.search(r"^summary:\s+(\d+)", main.read_text(), re.MULTILINE)
        if match is None:
            raise SystemExit(f"instructions bench: no summary in {main.name}")
        return int(match.group(1))


def measure(
    low: int = 300, high: int = 1300, kinds: tuple[str, ...] = ("wsgi", "flask"), wsgimon_root: Path | None = None
) -> list[Count]:
    """``wsgimon_root``: measure the wsgimon of another checkout (a worktree of an older commit)."""
    counts = []
    for kind in kinds:
        for wrapped in (False, True):
            difference = _main_thread_instructions(kind, wrapped, high, wsgimon_root) - _main_thread_instructions(
                kind, wrapped, low, wsgimon_root
            )
            name = f"{'Flask' if kind == 'flask' else 'plain WSGI'} app, {'wrapped' if wrapped else 'bare'}"
            counts.append(Count(name, difference / (high - low)))
    return counts


def render(counts: list[Count]) -> str:
    lines = ["| variant | instructions per request (request thread) |", "|---|---:|"]
    lines += [f"| {count.variant} | {count.per_request:,.0f} |" for count in counts]
    bare = {c.variant.split(",")[0]: c.per_request for c in counts if c.variant.endswith("bare")}
    for count in counts:
        if count.variant.endswith("wrapped"):
            base = bare[count.variant.split(",")[0]]
            lines.append(f"| {count.variant.split(',')[0]}: wsgimon adds | {count.per_request - base:,.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--low", type=int, default=300)
    parser.add_argument("--high", type=int, default=1300)
    parser.add_argument("--kinds", nargs="+", default=["wsgi", "flask"], choices=["wsgi", "flask"])
    parser.add_argument("--wsgimon-root", type=Path, help="measure the wsgimon of this checkout (e.g. a worktree)")
    args = parser.parse_args()
    print(render(measure(args.low, args.high, tuple(args.kinds), args.wsgimon_root)))
