"""``python -m bench [--smoke]``: run the benchmarks and print a Markdown table."""

from __future__ import annotations

import argparse
import platform
import sys
from datetime import datetime, timezone
from importlib.metadata import version

import wsgimon

from .hot_path import measure, render

PATHS = {"trivial": "/hello", "json + route param": "/items/42", "404": "/no/such/page"}


def main() -> None:
    parser = argparse.ArgumentParser(description="wsgimon benchmarks")
    parser.add_argument("--smoke", action="store_true", help="a few hundred requests, only to prove it runs")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=4000, help="requests per round and variant")
    args = parser.parse_args()
    rounds, requests = (2, 100) if args.smoke else (args.rounds, args.requests)
    rows = measure(PATHS, rounds, requests)
    header = (
        f"In-process, {rounds} interleaved rounds of {requests} requests per variant; "
        f"{datetime.now(timezone.utc):%Y-%m-%d}, Python {platform.python_version()}, "
        f"Flask {version('flask')}, wsgimon {wsgimon.__version__}, {platform.machine()}"
    )
    print(header)
    print()
    print(render(rows))
    if args.smoke:
        print("\n(smoke mode: numbers are not meaningful)", file=sys.stderr)


if __name__ == "__main__":
    main()
