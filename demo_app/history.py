"""Synthetic history for the demo, so a fresh start shows hours of data, not one minute."""

from __future__ import annotations

import math
import os
import random
import socket
import time

from wsgimon import MonitorMiddleware
from wsgimon.stats.aggregate import Aggregate
from wsgimon.stores.records import Batch, ProcessRow

# endpoint: (share of traffic, median ms, status mix)
_ROUTES = {
    "/test/normal": (0.50, 1.0, {200: 1.0}),
    "/items/<int:item_id>": (0.30, 1.3, {200: 1.0}),
    "/test/notfound": (0.06, 1.1, {404: 1.0}),
    "/test/error": (0.04, 1.6, {500: 1.0}),
    "/test/server-error": (0.03, 1.0, {500: 1.0}),
    "/test/slow": (0.02, 1900.0, {200: 1.0}),
    "<unmatched>": (0.05, 1.4, {404: 1.0}),
}


def seed_history(monitor: MonitorMiddleware, hours: float, per_minute: int = 120) -> int:
    """Write ``hours`` of minute buckets ending ten minutes ago, unless the store has them."""
    now = time.time()
    end = now - 600
    if monitor.store.overall(end - hours * 3600, end).count:
        return 0
    rng = random.Random(7)
    batch = Batch()
    total = 0
    first_minute = int((end - hours * 3600) // 60)
    for minute in range(first_minute, int(end // 60)):
        # A daily rhythm, and a burst of failures for a quarter of an hour.
        load = 0.6 + 0.4 * math.sin(minute / 1440 * 2 * math.pi)
        incident = (minute // 15) % 16 == 5
        per_key: dict[tuple[str, str], Aggregate] = {}
        for endpoint, (share, median_ms, statuses) in _ROUTES.items():
            agg = Aggregate()
            for _ in range(max(0, round(per_minute * load * share * rng.uniform(0.7, 1.3)))):
                status = rng.choices(list(statuses), list(statuses.values()))[0]
                if incident and endpoint == "/items/<int:item_id>" and rng.random() < 0.3:
                    status = 500
                duration = rng.lognormvariate(math.log(median_ms * (3 if incident else 1)), 0.35)
                error_type = {404: "404 Not Found", 500: "ValueError" if endpoint == "/test/error" else None}.get(
                    status
                )
                if status == 500 and error_type is None:
                    error_type = "500 Internal Server Error"
                agg.add(duration, status, status >= 500, 400 <= status < 500, error_type, minute * 60 + 30.0)
            if agg.count:
                per_key[(endpoint, "GET")] = agg
                total += agg.count
        batch.minutes[minute] = per_key
    process = ProcessRow(socket.gethostname(), os.getpid(), end - hours * 3600, now, total)
    monitor.store.write(batch, process)
    return total
