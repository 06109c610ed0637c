"""What the release dimension costs the store: rows and bytes per release, measured on SQLite.

The same traffic (N endpoints, every minute for H hours, twenty requests a minute each) is
written twice into fresh stores, once by a process without a release and once with one; the
difference is the release's rows. A release's rows are one per hour it served and endpoint
(plus all endpoints together), and one all-time row per endpoint: a bound that does not
depend on the request rate, only on how long the release lived and how many endpoints it saw.
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
import time
from dataclasses import dataclass

from wsgimon.stats.aggregate import Aggregate
from wsgimon.stats.time_windows import HOUR, MINUTE
from wsgimon.stores.records import Batch, ProcessRow
from wsgimon.stores.sqlite import SQLiteStore


@dataclass
class ReleaseSize:
    endpoints: int
    hours: int
    rows: int
    bound_rows: int
    bytes: int

    @property
    def bytes_per_row(self) -> float:
        return self.bytes / self.rows if self.rows else 0.0


def _file_bytes(path: str) -> int:
    conn = sqlite3.connect(path)
    try:
        conn.execute("VACUUM")
        return int(conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()


def _store_with(release: str | None, endpoints: int, hours: int, now: float) -> tuple[int, int]:
    rng = random.Random(7)
    names = [(f"/api/resource{i}/<int:id>", "GET") for i in range(endpoints)]
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "size.sqlite3")
        store = SQLiteStore(path, recent_requests=10)
        process = ProcessRow("bench", os.getpid(), now - hours * HOUR, now, 0, release=release)
        first_minute = int((now - hours * HOUR) // MINUTE)
        for chunk in range(first_minute, int(now // MINUTE), 60):
            batch = Batch()
            for minute in range(chunk, min(chunk + 60, int(now // MINUTE))):
                per_key = batch.minutes[minute] = {}
                for name in names:
                    agg = per_key[name] = Aggregate()
                    for _ in range(20):
                        agg.add(rng.lognormvariate(3.0, 0.8), 200, False, False, None, minute * MINUTE)
            store.write(batch, process)
        store.close()
        conn = sqlite3.connect(path)
        rows = int(conn.execute("SELECT count(*) FROM release_buckets").fetchone()[0])
        conn.close()
        return rows, _file_bytes(path)


def measure(endpoints: int = 100, hours: int = 24) -> ReleaseSize:
    now = time.time()
    _, without = _store_with(None, endpoints, hours, now)
    rows, with_release = _store_with("v1", endpoints, hours, now)
    bound = (hours + 2) * (endpoints + 1)  # hours touched (a partial first and last), plus the all-time row
    return ReleaseSize(endpoints, hours, rows, bound, with_release - without)


def render(size: ReleaseSize) -> str:
    return "\n".join(
        [
            "| endpoints | hours served | release rows | bound: (hours + 2) × (endpoints + 1) "
            "| store growth | per row |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {size.endpoints} | {size.hours} | {size.rows:,} | {size.bound_rows:,} | "
            f"{size.bytes / 1024:,.0f} KiB | {size.bytes_per_row:,.0f} B |",
        ]
    )


if __name__ == "__main__":
    print(render(measure()))
