"""``python -m bench [--smoke]``: run the benchmarks and print a Markdown table."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import datetime, timezone
from importlib.metadata import version

import wsgimon

from . import store_scale
from .hot_path import measure, render

PATHS = {"trivial": "/hello", "json + route param": "/items/42", "404": "/no/such/page"}


def main() -> None:
    parser = argparse.ArgumentParser(description="wsgimon benchmarks")
    parser.add_argument("--smoke", action="store_true", help="a few hundred requests, only to prove it runs")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=4000, help="requests per round and variant")
    parser.add_argument("--only", choices=("hot-path", "store"), help="run one part")
    parser.add_argument(
        "--endpoints", type=int, nargs="+", default=[100], help="store sizes for the read-side benchmark"
    )
    args = parser.parse_args()
    rounds, requests = (2, 100) if args.smoke else (args.rounds, args.requests)
    print(
        f"{datetime.now(timezone.utc):%Y-%m-%d}, Python {platform.python_version()}, "
        f"Flask {version('flask')}, wsgimon {wsgimon.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} cores\n"
    )
    if args.only in (None, "hot-path"):
        print(f"In-process hot path, {rounds} interleaved rounds of {requests} requests per variant:\n")
        print(render(measure(PATHS, rounds, requests)))
        print()
    if args.only in (None, "store"):
        endpoints, days, repeats = ((5,), 3, 3) if args.smoke else (tuple(args.endpoints), 7, 20)
        rows, flush = store_scale.measure_reads(endpoints, days, repeats)
        print(store_scale.render(rows, flush, days))
    if args.smoke:
        print("\n(smoke mode: numbers are not meaningful)", file=sys.stderr)


if __name__ == "__main__":
    main()
