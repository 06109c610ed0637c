"""The demo's jobs beside the app, watched by wsgimon's check-ins.

Three monitors are declared; a background thread runs two of the jobs, so the Check-ins panel
shows each state a job can be in:

- ``heartbeat`` runs every ``HEARTBEAT_S`` seconds and succeeds: ``up``;
- ``csv-import`` runs every minute and fails each time (a bad row): ``failed``;
- ``cache-cleanup`` is declared but never run: ``new``, then ``down`` once its minute and grace
  have passed.
"""

from __future__ import annotations

import contextlib
import threading
import time

import wsgimon
from wsgimon.stores.contract import Store

__all__ = ["CHECKINS", "HEARTBEAT_S", "run_jobs"]

HEARTBEAT_S = 10.0
_IMPORT_EVERY_S = 60.0

CHECKINS: dict[str, dict[str, str]] = {
    "heartbeat": {"every": "30s", "grace": "30s"},
    "csv-import": {"every": "1m", "grace": "30s"},
    "cache-cleanup": {"every": "1m", "grace": "30s"},
}


def _import_csv() -> None:
    time.sleep(0.05)
    raise ValueError("row 17: 'date' is not a date: '31/02/2026'")


def run_jobs(store: Store, stop: threading.Event) -> None:
    """Run ``heartbeat`` and ``csv-import`` on their schedules, pinging ``store``, until ``stop`` is set."""
    next_import = 0.0
    while not stop.is_set():
        with wsgimon.checkin("heartbeat", store, **CHECKINS["heartbeat"]):
            time.sleep(0.01)
        if time.monotonic() >= next_import:
            next_import = time.monotonic() + _IMPORT_EVERY_S
            # The failure is the job's: wsgimon records it (type and message) and lets it through.
            with contextlib.suppress(ValueError), wsgimon.checkin("csv-import", store, **CHECKINS["csv-import"]):
                _import_csv()
        stop.wait(HEARTBEAT_S)
