"""The goals of the benchmark, checked against one run's numbers.

In-process ratios are taken against the bare app run in the same process
(see ``peers.worker``); what differs between processes is larger than the
overheads compared here.
"""

from __future__ import annotations

import statistics

from .peers import Samples
from .store_scale import ReadRow

WSGIMON = ("wsgimon (memory)", "wsgimon (sqlite)")
ALERTING = "wsgimon (memory, alerts hanging)"
NO_SAMPLER = "wsgimon (memory, no sampler)"
POSTGRES = "wsgimon (postgresql)"
WITH_RELEASE = "wsgimon (sqlite, release)"
POSTGRES_READ_P95_MS = 100.0
NOISE = 0.02  # the spread of paired same-process ratios between rounds
IN_PROCESS_GOAL = 1.05
THROUGHPUT_GOAL = 0.95
FLAT_MIB = 2.0


def same_process_ratio(samples: Samples, kind: str, name: str) -> float | None:
    values = samples.get(kind, {}).get(name)
    if not values or not values[1]:
        return None
    variant_us, bare_us = values
    return statistics.median(v / b for v, b in zip(variant_us, bare_us, strict=True))


def cross_process_ratio(samples: Samples, kind: str, name: str) -> float | None:
    values = samples.get(kind, {}).get(name)
    bare = samples.get(kind, {}).get("bare Flask")
    if not values or not bare:
        return None
    return statistics.median(values[0]) / statistics.median(bare[0])


def _mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def render(
    samples: Samples,
    server: dict[str, list[tuple[float, float]]] | None,
    memory: dict[str, tuple[int, int, int] | None],
    postgres_reads: list[ReadRow] | None = None,
    extra_rows: list[str] | None = None,
) -> str:
    """``extra_rows``: goal rows a part checks itself (``bench.time_spent``), appended as they are."""
    lines = ["| goal | measured | |", "|---|---|---|"]
    for name in WSGIMON:
        ratio = same_process_ratio(samples, "trivial", name)
        if ratio is not None:
            lines.append(
                f"| {name}, trivial endpoint, in-process ≤ {IN_PROCESS_GOAL} × bare "
                f"| {ratio:.3f} (same process) | {_mark(ratio <= IN_PROCESS_GOAL)} |"
            )
    peers = [
        name
        for name in samples.get("trivial", {})
        if name not in (*WSGIMON, ALERTING, NO_SAMPLER) and name != "bare Flask" and "floor" not in name
    ]
    for kind in samples:
        ours = max((cross_process_ratio(samples, kind, name) or 0.0) for name in WSGIMON)
        cheapest = min(
            ((cross_process_ratio(samples, kind, name), name) for name in peers if samples[kind].get(name)),
            default=None,
            key=lambda pair: pair[0] or float("inf"),
        )
        if cheapest is not None and cheapest[0] is not None:
            lines.append(
                f"| below every peer, {kind} | wsgimon ≤ {ours:.2f}, cheapest peer {cheapest[1]} "
                f"{cheapest[0]:.2f} | {_mark(ours < cheapest[0])} |"
            )
    alerting, plain = (
        same_process_ratio(samples, "trivial", ALERTING),
        same_process_ratio(samples, "trivial", WSGIMON[0]),
    )
    if alerting is not None and plain is not None:
        lines.append(
            f"| alerts configured (deliveries hanging) cost the request path nothing: ratio within {NOISE} of "
            f"wsgimon (memory) | {alerting:.3f} vs {plain:.3f} | {_mark(abs(alerting - plain) <= NOISE)} |"
        )
    unwatched = same_process_ratio(samples, "trivial", NO_SAMPLER)
    if unwatched is not None and plain is not None:
        lines.append(
            f"| the slow-request sampler costs fast requests nothing: ratio within {NOISE} of the run without it "
            f"| {plain:.3f} vs {unwatched:.3f} | {_mark(abs(plain - unwatched) <= NOISE)} |"
        )
    on_postgres, on_sqlite = (
        same_process_ratio(samples, "trivial", POSTGRES),
        same_process_ratio(samples, "trivial", WSGIMON[1]),
    )
    if on_postgres is not None and on_sqlite is not None:
        lines.append(
            f"| the PostgreSQL store costs the request path what SQLite does: ratio within {NOISE} "
            f"| {on_postgres:.3f} vs {on_sqlite:.3f} | {_mark(abs(on_postgres - on_sqlite) <= NOISE)} |"
        )
    released = same_process_ratio(samples, "trivial", WITH_RELEASE)
    if released is not None and on_sqlite is not None:
        lines.append(
            f"| the release dimension costs the request path nothing: ratio within {NOISE} of SQLite without one "
            f"| {released:.3f} vs {on_sqlite:.3f} | {_mark(abs(released - on_sqlite) <= NOISE)} |"
        )
    if postgres_reads:
        worst = max(postgres_reads, key=lambda row: row.p95_ms)
        lines.append(
            f"| PostgreSQL, 7 days of history, {worst.endpoints} endpoints: every read p95 < "
            f"{POSTGRES_READ_P95_MS:g} ms | worst {worst.p95_ms:.1f} ms (`{worst.path}`) "
            f"| {_mark(worst.p95_ms < POSTGRES_READ_P95_MS)} |"
        )
    if server and "bare Flask" in server:
        bare_rate = statistics.median(rate for rate, _ in server["bare Flask"])
        for name in WSGIMON:
            if name in server:
                ratio = statistics.median(rate for rate, _ in server[name]) / bare_rate
                lines.append(
                    f"| {name} under gunicorn ≥ {THROUGHPUT_GOAL} × bare req/s | {ratio:.2f} "
                    f"| {_mark(ratio >= THROUGHPUT_GOAL)} |"
                )
    for name in WSGIMON:
        values = memory.get(name)
        if values is not None:
            done, warm, end = values
            growth = (end - warm) / (1024 * 1024)
            lines.append(
                f"| {name} memory flat after warm-up ({done:,} requests, 100,000 paths) | {growth:+.1f} MiB "
                f"| {_mark(growth <= FLAT_MIB)} |"
            )
    lines += extra_rows or []
    return "\n".join(lines)
