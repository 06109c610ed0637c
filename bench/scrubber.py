"""What the secret scrubber costs, where it runs: in the fold, once per error kind and flush.

Measured on an 8,000-character traceback holding secrets in several forms (the default
``max_traceback_chars``), with and without the default redacted keys, and on an 8 MB message cut
to its bound before it is scrubbed. Each run checks what it measured: the secrets are gone and the
bounded text has its bound.
"""

from __future__ import annotations

import statistics
import time

from wsgimon.recording.options import DEFAULT_REDACT_KEYS
from wsgimon.secret_text import bounded_without_secrets, without_secrets

_SECRETS = ("S3cretDbPass", "hunter2Colon")


def traceback_of(chars: int) -> str:
    """A Python traceback of ``chars`` characters whose last line carries two secrets."""
    lines = ["Traceback (most recent call last):\n"]
    n = 0
    while sum(map(len, lines)) < chars - 200:
        lines.append(
            f'  File "/srv/app/.venv/lib/python3.11/site-packages/flask/app_{n}.py", line {100 + n}, in wsgi\n'
        )
        lines.append(f"    response = self.full_dispatch_request(session=session, token_key=key_{n})\n")
        n += 1
    lines.append("RuntimeError: could not connect to postgresql://app:S3cretDbPass@db/shop, password: hunter2Colon\n")
    return "".join(lines)[-chars:]


def measure(runs: int = 50) -> dict[str, float]:
    """µs per call, median of ``runs``."""
    text = traceback_of(8000)
    huge = text * 1000
    cases = {
        "8,000-char traceback": lambda: without_secrets(text),
        "8,000-char traceback, default redact_keys": lambda: without_secrets(text, DEFAULT_REDACT_KEYS),
        "8 MB message, bounded to 8,000 first": lambda: bounded_without_secrets(
            huge, 8000, keep="tail", extra_keys=DEFAULT_REDACT_KEYS
        ),
    }
    out: dict[str, float] = {}
    for label, run in cases.items():
        result = run()
        if any(secret in result for secret in _SECRETS) or ("bounded" in label and len(result) != 8000):
            raise SystemExit(f"scrubber bench: {label} kept a secret or its bound was not kept")
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            run()
            times.append((time.perf_counter() - started) * 1e6)
        out[label] = statistics.median(times)
    return out


def render(results: dict[str, float]) -> str:
    lines = ["| text | µs per call (median) |", "|---|---:|"]
    lines += [f"| {label} | {us:,.0f} |" for label, us in results.items()]
    return "\n".join(lines)
