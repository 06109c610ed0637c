"""Check-in monitors and their runs in one process's memory: the memory store's check-ins part."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import replace

from ..stats.checkins import Monitor, Run
from .contract import MAX_CHECKINS, RUNS_PER_CHECKIN, CheckInStore, TooManyCheckIns, ping_run

__all__ = ["MemoryCheckIns"]

_PRUNE_EVERY_S = 60.0


class MemoryCheckIns(CheckInStore):
    """Kept like the SQL stores' rows: the newest runs per monitor, pruned past the retention."""

    hour_retention_s: float

    def __init__(self) -> None:
        super().__init__()
        self._checkin_lock = threading.Lock()
        # name -> (monitor, declared by the configuration)
        self._checkin_monitors: dict[str, tuple[Monitor, bool]] = {}
        self._checkin_runs: dict[str, deque[Run]] = {}
        self._checkins_pruned = 0.0

    def declare_checkin(self, monitor: Monitor) -> None:
        with self._checkin_lock:
            known = self._checkin_monitors.get(monitor.name)
            if known is not None:
                monitor = replace(monitor, created=known[0].created)
            self._checkin_monitors[monitor.name] = (monitor, True)

    def checkin_ping(
        self,
        name: str,
        kind: str,
        now: float,
        *,
        declare: Monitor | None = None,
        exit_code: int | None = None,
        duration_s: float | None = None,
        error: str | None = None,
        log: str | None = None,
    ) -> Monitor | None:
        with self._checkin_lock:
            known = self._checkin_monitors.get(name)
            if known is None:
                if declare is None:
                    return None
                if len(self._checkin_monitors) >= MAX_CHECKINS:
                    raise TooManyCheckIns(
                        f"the store keeps {MAX_CHECKINS} check-in monitors already; a ping cannot add {name!r}"
                    )
                known = self._checkin_monitors[name] = (declare, False)
            elif declare is not None and not known[1]:
                known = self._checkin_monitors[name] = (replace(declare, created=known[0].created), False)
            runs = self._checkin_runs.setdefault(name, deque(maxlen=RUNS_PER_CHECKIN))
            run, ends_last = ping_run(runs[-1] if runs else None, kind, now, exit_code, duration_s, error, log)
            if ends_last:
                runs[-1] = run
            else:
                runs.append(run)
            return known[0]

    def checkin_monitors(self) -> list[Monitor]:
        with self._checkin_lock:
            return [self._checkin_monitors[name][0] for name in sorted(self._checkin_monitors)]

    def checkin_runs(self, name: str, limit: int) -> list[Run]:
        with self._checkin_lock:
            runs = list(self._checkin_runs.get(name, ()))
        return [replace(run) for run in runs[-limit:]] if limit > 0 else []

    def all_checkin_runs(self, limit: int) -> dict[str, list[Run]]:
        with self._checkin_lock:
            found = {name: list(runs)[-limit:] for name, runs in self._checkin_runs.items() if runs and limit > 0}
        return {name: [replace(run) for run in runs] for name, runs in sorted(found.items())}

    def delete_checkin(self, name: str) -> bool:
        with self._checkin_lock:
            self._checkin_runs.pop(name, None)
            return self._checkin_monitors.pop(name, None) is not None

    def _prune_checkins(self, now: float) -> None:
        """Runs past the retention go, but never a monitor's newest run nor its newest ended one."""
        if not self._checkin_runs or abs(now - self._checkins_pruned) < _PRUNE_EVERY_S:
            return
        horizon = now - self.hour_retention_s
        with self._checkin_lock:
            self._checkins_pruned = now
            for runs in self._checkin_runs.values():
                if not runs:
                    continue
                newest, newest_ended = runs[-1], next((run for run in reversed(runs) if run.ended is not None), None)
                kept = [
                    run
                    for run in runs
                    if run is newest
                    or run is newest_ended
                    or (run.ended if run.ended is not None else run.started or 0.0) >= horizon
                ]
                if len(kept) != len(runs):
                    runs.clear()
                    runs.extend(kept)
