"""A batch's statistics as bytes: what a flush appends to the store's journal and keeps in its spool.

Only what is folded into shared rows later travels this way (per-minute aggregates, error
samples, issues, dependencies, overflowed names); the request log and slow requests are rows of
their own. JSON, compressed: data read back from a database or a file that other processes can
write must never be able to run code (no pickle), and a payload that does not decode is refused
as a whole, never half applied.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Sequence
from typing import Any

from ..stats.aggregate import Aggregate
from ..stats.dependencies import Dependency, Use
from ..stats.sketch import QuantileSketch
from ..stats.spent import Spent
from .records import Batch, ErrorSample, IssueSample

__all__ = ["CorruptPayload", "decode_aggregate", "decode_batch", "encode_aggregate", "encode_batch", "has_statistics"]

_VERSION = 1


class CorruptPayload(ValueError):
    """A journal row or spool file that is not a batch this version can read."""


def has_statistics(batch: Batch) -> bool:
    """Whether the batch holds anything that is folded later (not only log lines)."""
    return bool(
        batch.minutes or batch.errors or batch.issues or batch.overflowed or batch.dependencies or batch.catalog
    )


def encode_aggregate(agg: Aggregate) -> tuple[Any, ...]:
    """An aggregate as the bucket columns hold it (schema.AGGREGATE_COLUMNS)."""
    return (
        agg.count,
        agg.errors,
        agg.client_errors,
        agg.total_ms,
        agg.min_ms if agg.count else None,
        agg.max_ms,
        agg.sketch.to_bytes(),
        json.dumps(agg.status_codes, separators=(",", ":")),
        json.dumps(agg.error_types, separators=(",", ":")),
        agg.last_seen,
        json.dumps(agg.histogram, separators=(",", ":")),
        "" if agg.spent is None else agg.spent.to_text(),
    )


def decode_aggregate(row: Sequence[Any]) -> Aggregate:
    # Readers decode thousands of rows: skip Aggregate.__init__ and its empty sketch.
    agg = Aggregate.__new__(Aggregate)
    agg.count, agg.errors, agg.client_errors, agg.total_ms = row[0], row[1], row[2], row[3]
    agg.min_ms = float("inf") if row[4] is None else row[4]
    agg.max_ms = row[5]
    agg.sketch = QuantileSketch.from_bytes(bytes(row[6]))
    agg.status_codes = {int(code): n for code, n in json.loads(row[7]).items()}
    agg.error_types = json.loads(row[8]) if row[8] != "{}" else {}
    agg.last_seen = row[9]
    agg.histogram = json.loads(row[10]) if row[10] != "{}" else {}
    agg.spent = Spent.from_text(row[11]) if row[11] else None
    return agg


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def encode_batch(batch: Batch) -> bytes:
    """The batch's statistics, compressed; encoded before any transaction opens."""
    minutes = []
    for minute, per_key in batch.minutes.items():
        for (endpoint, method), agg in per_key.items():
            values = list(encode_aggregate(agg))
            values[6] = _b64(values[6])
            minutes.append([minute, endpoint, method, values])
    document = {
        "v": _VERSION,
        "minutes": minutes,
        "errors": [
            [s.type, s.endpoint, s.method, s.count, s.first_seen, s.last_seen, s.message, s.traceback, s.failed]
            for s in batch.errors.values()
        ],
        "issues": [
            [
                i.id,
                i.fingerprint,
                i.type,
                i.title,
                i.message,
                i.traceback,
                i.frames,
                i.culprit,
                i.count,
                i.first_seen,
                i.last_seen,
                [[endpoint, method, n] for (endpoint, method), n in i.endpoints.items()],
                [[minute, n] for minute, n in i.minutes.items()],
            ]
            for i in batch.issues.values()
        ],
        "overflowed": batch.overflowed,
        "uses": [
            [dependency_id, endpoint, method, minute, *_use_values(use)]
            for (dependency_id, endpoint, method, minute), use in batch.dependencies.items()
        ],
        "catalog": [[d.id, d.kind, d.text, d.frame, d.first_seen, d.last_seen] for d in batch.catalog.values()],
    }
    return zlib.compress(json.dumps(document, separators=(",", ":")).encode(), 1)


def _use_values(use: Use) -> list[Any]:
    values: list[Any] = list(use.to_values())
    values[4] = _b64(values[4])
    return values


def decode_batch(payload: bytes) -> Batch:
    """The batch :func:`encode_batch` made; :class:`CorruptPayload` for anything else."""
    try:
        document = json.loads(zlib.decompress(bytes(payload)))
        if not isinstance(document, dict) or document.get("v") != _VERSION:
            raise CorruptPayload(f"unknown payload version {document.get('v') if isinstance(document, dict) else '?'}")
        batch = Batch()
        for minute, endpoint, method, values in document["minutes"]:
            values[6] = _unb64(values[6])
            batch.minutes.setdefault(int(minute), {})[(str(endpoint), str(method))] = decode_aggregate(values)
        for kind, endpoint, method, count, first, last, message, traceback, failed in document["errors"]:
            sample = ErrorSample(kind, endpoint, method, int(count), first, last, message, traceback, bool(failed))
            batch.errors[(kind, endpoint, method)] = sample
        for row in document["issues"]:
            issue = IssueSample(*row[:11])
            issue.endpoints = {(str(endpoint), str(method)): int(n) for endpoint, method, n in row[11]}
            issue.minutes = {int(minute): int(n) for minute, n in row[12]}
            batch.issues[issue.id] = issue
        batch.overflowed = int(document["overflowed"])
        for dependency_id, endpoint, method, minute, *values in document["uses"]:
            values[4] = _unb64(values[4])
            batch.dependencies[(dependency_id, endpoint, method, int(minute))] = Use.from_values(values)
        for dependency_id, kind, text, frame, first, last in document["catalog"]:
            batch.catalog[dependency_id] = Dependency(dependency_id, kind, text, frame, first, last)
    except CorruptPayload:
        raise
    except (ValueError, TypeError, KeyError, IndexError, zlib.error) as exc:
        raise CorruptPayload(f"{type(exc).__name__}: {exc}") from None
    return batch
