"""``python -m bench``: the whole comparison, printed and optionally written as Markdown.

``--smoke`` runs a few hundred requests of the in-process and store parts, only
to prove they work (CI runs it); it needs no peer installed and asserts nothing about
the numbers (the time_spent part still fails when its queries and calls were not all
counted, or a request did not answer 2xx).
The full run needs the peers of ``bench/requirements.txt`` (``make bench``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import wsgimon
from wsgimon.internal_errors import internal_error_count

if TYPE_CHECKING:
    from tests.postgres import PostgresServer

from . import (
    dashboard_render,
    goals,
    hot_path,
    issues,
    lifecycle,
    peers,
    postgres,
    release_size,
    scrubber,
    server_load,
    store_scale,
    time_spent,
    writer_scaling,
)

_SECTIONS = (
    "in-process",
    "server",
    "memory",
    "reads",
    "releases",
    "issues",
    "scrubber",
    "lifecycle",
    "dashboard",
    "time_spent",
    "writers",
)
PATHS = {"trivial": "/hello", "json + route param": "/items/42", "404": "/no/such/page"}
_PEER_PACKAGES = (
    "flask",
    "werkzeug",
    "gunicorn",
    "prometheus-flask-exporter",
    "Flask-MonitoringDashboard",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation-flask",
    "sentry-sdk",
)


def _versions() -> str:
    found = []
    for package in _PEER_PACKAGES:
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} (not installed)")
    return ", ".join(found)


def _machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores {model}".strip()


def main() -> None:
    parser = argparse.ArgumentParser(description="wsgimon benchmarks")
    parser.add_argument("--smoke", action="store_true", help="a few hundred requests, only to prove it runs")
    parser.add_argument("--write", type=Path, help="also write the results as Markdown to this file")
    parser.add_argument(
        "--rounds", type=int, default=10, help="interleaved rounds per variant (even: each order of a pair as often)"
    )
    parser.add_argument("--requests", type=int, default=3000, help="requests per round and variant")
    parser.add_argument("--memory-requests", type=int, default=1_000_000)
    parser.add_argument("--memory-seconds", type=float, default=120.0, help="time cap per variant")
    parser.add_argument("--server-seconds", type=int, default=10)
    parser.add_argument("--server-rounds", type=int, default=3)
    parser.add_argument("--endpoints", type=int, nargs="+", default=[100, 1000], help="store sizes for the read side")
    parser.add_argument("--apps", type=int, default=1000, help="apps made in the many-apps part")
    parser.add_argument(
        "--time-spent-requests", type=int, default=1000, help="requests per round and variant, time_spent part"
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="time_spent part: a checkout of the commit before queries and calls were timed (a git worktree), "
        "whose request path is counted against this tree's",
    )
    parser.add_argument("--only", nargs="+", choices=_SECTIONS, default=list(_SECTIONS), help="run only these parts")
    args = parser.parse_args()

    sections = [
        "# wsgimon benchmark results",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {_machine()} · Python {platform.python_version()} · "
        f"wsgimon {wsgimon.__version__}",
        "",
        f"Versions: {_versions()}.",
        "",
    ]

    def section(title: str, body: str) -> None:
        sections.extend([f"## {title}", "", body, ""])
        print(f"\n## {title}\n\n{body}", flush=True)

    with postgres.server() as pg:
        if pg is None:
            print("PostgreSQL not installed: its parts are skipped", file=sys.stderr)
        _run(args, section, pg)
    swallowed = internal_error_count()
    if swallowed:
        # wsgimon failed open somewhere: what was measured is not what a user runs.
        raise SystemExit(f"bench: wsgimon reported {swallowed} internal error(s) during the run (see the log above)")
    notes = Path(__file__).with_name("NOTES.md")
    if notes.exists() and not args.smoke:
        sections.append(notes.read_text())
    if args.write:
        args.write.write_text("\n".join(sections))


def _run(args: argparse.Namespace, section: Callable[[str, str], None], pg: PostgresServer | None) -> None:
    if args.smoke:
        rows = hot_path.measure(PATHS, 2, 100)
        section("In-process (smoke)", hot_path.render(rows))
        reads, flush = store_scale.measure_reads((5,), 3, 3)
        section("Read side and flush (smoke)", store_scale.render(reads, flush, 3))
        if pg is not None:
            reads, flush = store_scale.measure_reads((5,), 3, 3, lambda _directory: postgres.fresh_database(pg))
            section("Read side and flush, PostgreSQL (smoke)", store_scale.render(reads, flush, 3, "PostgreSQL"))
        section("Store size per release (smoke)", release_size.render(release_size.measure(5, 3)))
        section("Issues: what grouping failures costs (smoke)", issues.render(issues.measure(200, 1)))
        section("The secret scrubber, in the fold (smoke)", scrubber.render(scrubber.measure(3)))
        section("Many apps in one process (smoke)", lifecycle.render(lifecycle.measure(20)))
        section(
            "Writers sharing one store (smoke)",
            writer_scaling.run(["--store", "sqlite", "--writers", "1,4", "--seconds", "2", "--processes", "2"]),
        )
        section("Dashboard in Chromium (smoke)", dashboard_render.render(dashboard_render.measure(2)))
        section(
            "Time spent in queries and calls: what capturing them costs (smoke)",
            time_spent.render(time_spent.measure_times(2, 20, queries=10, calls=3, process_rounds=1), None),
        )
        print("\n(smoke mode: numbers are not meaningful)", file=sys.stderr)
        return

    in_process: peers.Samples = {}
    if "in-process" in args.only:
        in_process = peers.measure(args.rounds, args.requests)
        section(
            f"In-process µs/request ({args.rounds} interleaved rounds of {args.requests} requests, "
            "one process per variant)",
            peers.render(in_process)
            + "\n\n“Same process”: each round also runs a bare app in the variant's own process, alternately "
            "before and after it; the median of those paired ratios. The bare Flask row there compares two "
            "identical bare apps: what two apps in one process differ by, the resolution of this column.",
        )
    server = None
    if "server" in args.only:
        server = server_load.measure(args.server_rounds, args.server_seconds)
        section(
            f"Under gunicorn -w 2 -k gthread --threads 4, wrk -t2 -c64, {args.server_seconds} s × "
            f"{args.server_rounds} rounds, /hello",
            server_load.render(server),
        )
    memory: dict[str, tuple[int, int, int] | None] = {}
    if "memory" in args.only:
        memory = peers.measure_memory(args.memory_requests, args.memory_seconds)
        section(
            f"Memory: {args.memory_requests:,} requests over 100,000 distinct paths "
            f"(at most {args.memory_seconds:g} s per variant)",
            peers.render_memory(memory),
        )
    pg_reads: list[store_scale.ReadRow] = []
    if "reads" in args.only:
        reads, flush = store_scale.measure_reads(tuple(args.endpoints), 7, 20)
        section(
            "Read side with 7 days of history, and the cost of a flush (SQLite)", store_scale.render(reads, flush, 7)
        )
        if pg is not None:
            pg_reads, flush = store_scale.measure_reads((100,), 7, 20, lambda _directory: postgres.fresh_database(pg))
            section(
                "Read side with 7 days of history, and the cost of a flush (PostgreSQL, on this host)",
                store_scale.render(pg_reads, flush, 7, "PostgreSQL"),
            )
    if "releases" in args.only:
        section(
            "What a release adds to the store (SQLite, 100 endpoints served for a day)",
            release_size.render(release_size.measure(100, 24)),
        )
    if "issues" in args.only:
        section("Issues: what grouping failures costs, off the request thread", issues.render(issues.measure()))
    if "scrubber" in args.only:
        section("The secret scrubber, in the fold (once per error kind and flush)", scrubber.render(scrubber.measure()))
    if "lifecycle" in args.only:
        section(
            f"Many apps in one process: {args.apps} Flask apps made, served two requests each and dropped",
            lifecycle.render(lifecycle.measure(args.apps)),
        )
    if "dashboard" in args.only:
        section("The dashboard in headless Chromium at scale", dashboard_render.render(dashboard_render.measure()))
    spent_goals: list[str] = []
    if "time_spent" in args.only:
        times = time_spent.measure_times(args.rounds, args.time_spent_requests)
        counts = time_spent.measure_counts(args.before, time_spent.TWENTY, 5, 100, 400, (300, 1300))
        section(
            "Time spent in queries and calls: what capturing them costs",
            time_spent.render(times, counts),
        )
        spent_goals = time_spent.goal_rows(times, counts)
        if args.write:
            time_spent.dump(times, counts, args.write.with_suffix(".time_spent.json"))
    if "writers" in args.only:
        section(
            "Writers sharing one store: 20 req/s each, flush every second, in 25 processes",
            writer_scaling.run(["--writers", "1,10,50,100,200,500", "--seconds", "20", "--processes", "25"]),
        )
    section("Goals", goals.render(in_process, server, memory, pg_reads, spent_goals))


if __name__ == "__main__":
    main()
