"""Build batches directly, to seed a store with history (days of traffic in a few milliseconds)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable

from wsgimon.stats.aggregate import Aggregate
from wsgimon.stores.records import Batch, ErrorSample, ProcessRow, RequestEntry

Request = tuple[float, str, str, int, float]  # (time, endpoint, method, status, duration_ms)


def batch_of(requests: Iterable[Request], *, with_log: bool = True) -> Batch:
    batch = Batch()
    for wall, endpoint, method, status, duration_ms in requests:
        minute = batch.minutes.setdefault(int(wall // 60), {})
        agg = minute.get((endpoint, method))
        if agg is None:
            agg = minute[(endpoint, method)] = Aggregate()
        error_type = "ValueError" if status >= 500 else ("404 Not Found" if status == 404 else None)
        agg.add(duration_ms, status, status >= 500, 400 <= status < 500, error_type, wall)
        if with_log:
            batch.requests.append(
                RequestEntry(wall, method, endpoint, endpoint, status, duration_ms, None, error_type, 10)
            )
        if error_type is not None:
            key = (error_type, endpoint, method)
            sample = ErrorSample(error_type, endpoint, method, 1, wall, wall, f"failed at {wall}", None)
            if key in batch.errors:
                batch.errors[key].merge(sample)
            else:
                batch.errors[key] = sample
    return batch


def process(started: float | None = None, requests: int = 0) -> ProcessRow:
    now = time.time()
    return ProcessRow(socket.gethostname(), os.getpid(), started or now, now, requests)
