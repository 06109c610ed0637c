"""From raw request records to stored statistics, off the request thread.

The request thread only appends an immutable tuple to a deque (atomic in
CPython, no lock). The recorder has those tuples folded into a :class:`Batch`
(:mod:`.fold`: naming endpoints, redacting paths, formatting tracebacks), writes
it to the store and keeps what the store refused, bounded, for the next flush.
It runs every ``flush_interval`` in a background thread started lazily in the
serving process (after a fork, never before), before every read of the
monitoring API, and at exit.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import lru_cache
from itertools import repeat

from ..internal_errors import logger, report_internal_error
from ..stats.aggregate import DEFAULT_BUCKETS_S, bucket_labels
from ..stores.batch_codec import CorruptPayload, encode_batch, has_statistics
from ..stores.contract import Store, StoreUnavailable
from ..stores.records import Batch, ProcessRow
from ..stores.spool import Spool, SpooledBatch, UnsafeSpool
from . import flusher as background
from .fold import Folder, RawRecord
from .naming import EndpointNamer
from .process_info import pid_exists

__all__ = ["RawRecord", "Recorder"]

MAX_PENDING = 100_000
_MAX_UNSENT_MINUTES = 120  # statistics kept in memory while the store is unavailable
_HEARTBEAT_S = 10.0  # an idle process still shows up as alive
#: how often a process looks for processes that vanished with requests in flight
_REAP_S = 10.0
#: a process of another host that has not written for this long is gone (its heartbeat is 10 s)
_STALE_S = 120.0
#: how long the last flush at exit may wait for the store before it keeps the rest in the spool
_EXIT_BUDGET_S = 5.0
#: background writes that must fail in a row before the log says the store cannot be written:
#: one that waited out a busy lock and went through with the next flush is not news
_TELL_AFTER_FAILURES = 2


class Recorder:
    """Owns the pending records of this process and ships them to the store."""

    def __init__(
        self,
        store: Store,
        namer: EndpointNamer,
        *,
        redact_keys: tuple[str, ...],
        recent_requests: int,
        flush_interval: float,
        max_traceback_chars: int,
        histogram_buckets_s: tuple[float, ...] = DEFAULT_BUCKETS_S,
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
        capturing: tuple[bool, bool] = (False, False),
        n_plus_one_repeats: int = 5,
    ) -> None:
        self.store = store
        self.namer = namer
        self.pending: deque[RawRecord] = deque()
        self.dropped = 0
        self.flush_interval = flush_interval
        self._recent_requests = recent_requests
        self._wall_clock = wall_clock
        self._fold_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._background_lock = threading.Lock()
        self._pid = os.getpid()
        self._host = _host_name()
        self.started_at = wall_clock()
        self.last_flush: float | None = None
        self.requests_flushed = 0
        self._folder = Folder(
            namer,
            redact_keys=redact_keys,
            recent_requests=recent_requests,
            max_traceback_chars=max_traceback_chars,
            buckets=bucket_labels(histogram_buckets_s),
            perf_anchor=clock(),
            wall_anchor=wall_clock(),
            capturing=capturing,
            n_plus_one_repeats=n_plus_one_repeats,
        )
        self._unsent: Batch | None = None
        self._in_flight: Batch | None = None
        #: (requests in flight, when the oldest started, "METHOD path" of it): written with each flush.
        self.in_flight_probe: Callable[[], tuple[int, float | None, str | None]] | None = None
        self._in_flight_written: tuple[int, float | None, str | None] = (0, None, None)
        #: the release of this process, written with its row (statistics per release)
        self.release: str | None = None
        self.store_error: str | None = None
        self._failed_writes = 0  # background writes failed in a row
        self.lost_to_store = 0
        self._last_write = 0.0
        #: called before each flush (the middleware hooks libraries imported since)
        self.before_flush: Callable[[], None] | None = None
        #: requests this process can run at once, when its server says (see integrations.gunicorn)
        self.capacity: int | None = None
        self._last_reap = 0.0
        #: what this process could not write, kept where the next process of the host finds it
        self._spool = Spool(store.spool_directory) if store.spool_directory else None
        self._spooled = False
        self._spool_warned = False

    def set_wall_clock(self, wall_clock: Callable[[], float]) -> None:
        """Time records by ``wall_clock`` from now on (a seam for tests that move time forward)."""
        self._wall_clock = wall_clock
        self._folder.anchor(time.perf_counter(), wall_clock())

    # -- background flushing ------------------------------------------------------
    def ensure_started(self) -> None:
        """Have this process's flusher thread flush this recorder; after a fork, as a new process."""
        pid = os.getpid()
        if pid != self._pid:
            self._after_fork(pid)
        background.register(self)

    def after_fork(self) -> None:
        """In a forked child: a new process with its own lock and identity."""
        self._after_fork(os.getpid())

    def _after_fork(self, pid: int) -> None:
        # Locks of the parent are unusable in the child, and what the parent had
        # pending is the parent's to write.
        self._pid = pid
        self._fold_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._background_lock = threading.Lock()
        self.pending.clear()
        self._unsent = None
        self._in_flight = None
        self.started_at = self._wall_clock()
        self.requests_flushed = 0
        self.last_flush = None
        self._spooled = False

    def shutdown(self) -> None:
        """Stop being flushed in the background and write what is pending; at close and at exit.

        The write has its own budget; what it cannot write is kept in the spool (and said so),
        and only what the spool cannot take either is lost, counted and logged.
        """
        background.unregister(self)
        with self.store.time_limit(_EXIT_BUDGET_S):
            self.flush()
            self._say_what_was_not_written()
            if self.last_flush is not None:
                process = ProcessRow(
                    self._host, self._pid, self.started_at, self.last_flush, self.requests_flushed, release=self.release
                )
                try:
                    self.store.process_stopped(process)
                except StoreUnavailable:
                    pass  # it shows as stopped once its row is a day old; nothing is lost
                except Exception as exc:
                    report_internal_error("shutdown", exc)

    def _say_what_was_not_written(self) -> None:
        unsent = self._unsent
        if unsent is None or not has_statistics(unsent) or self.store_error is None:
            return
        if self._spooled and self._spool is not None:
            logger.warning(
                "wsgimon: the store could not be written at exit (%s); %d requests kept in %s for the next process",
                self.store_error,
                unsent.request_count,
                self._spool.directory,
            )
        else:
            self.lost_to_store += unsent.request_count
            logger.error(
                "wsgimon: the store could not be written at exit (%s) and nothing could keep them: %d requests lost",
                self.store_error,
                unsent.request_count,
            )

    def final_flush(self) -> None:
        """The last flush of a recorder whose middleware is gone: write, then release the store."""
        self.shutdown()
        self.store.close()

    # -- folding -------------------------------------------------------------------
    def overfull(self) -> None:
        """Called from the request path when the deque grows past its bound (flusher stuck)."""
        pending = self.pending
        while len(pending) > MAX_PENDING:
            try:
                pending.popleft()
            except IndexError:
                break
            self.dropped += 1

    def flush(self, timeout: float | None = None, *, dying: bool = False) -> None:
        """Fold pending records and write them with what earlier failed writes kept; never raises.

        Folding (CPU only) and writing (which may wait for a busy store) take separate
        locks: a reader always folds its own records, waiting for a fold in progress, and
        then writes within ``timeout`` (a reader must not wait for a locked store). What it
        could not write waits in memory for the background flush, and nothing is reported
        as failing. ``dying``: the process is about to be killed (``timeout`` bounds the fold's
        wait too, as the thread it interrupted may hold the lock).
        """
        try:
            if self.before_flush is not None and not dying:
                self.before_flush()
            if not self._fold_lock.acquire(timeout=timeout if dying and timeout is not None else -1):
                return
            try:
                self._keep(self._fold())
            finally:
                self._fold_lock.release()
            if timeout is None:
                with self._write_lock:
                    self._write(None)
                # Outside the write lock: a read's own flush must not wait for the maintainer's fold.
                if self.store_error is None:
                    self._background_work(self._wall_clock())
                self._reap_lost()
            elif self._write_lock.acquire(timeout=timeout):
                try:
                    with self.store.time_limit(timeout):
                        self._write(timeout)
                finally:
                    self._write_lock.release()
        except Exception as exc:
            report_internal_error("flush", exc)

    def _keep(self, batch: Batch) -> None:
        """Add a newer batch to what waits to be written (bounded); under the fold lock."""
        if self._unsent is None:
            self._unsent = batch
        else:
            self.lost_to_store += self._unsent.absorb(batch, self._recent_requests, _MAX_UNSENT_MINUTES)

    def _write(self, timeout: float | None) -> None:
        with self._fold_lock:
            batch, self._unsent = self._unsent or Batch(), None
            self._in_flight = batch
        try:
            self._write_batch(batch, timeout)
        finally:
            self._in_flight = None

    def _background_work(self, now: float) -> None:
        """After a background flush, written or with nothing to write: the store's folding and pruning
        (one thread at a time; another that finds it under way leaves it)."""
        if not self._background_lock.acquire(blocking=False):
            return
        try:
            with contextlib.suppress(StoreUnavailable):
                self.store.after_flush(now)
        finally:
            self._background_lock.release()

    def _probe_in_flight(self) -> tuple[int, float | None, str | None]:
        probe = self.in_flight_probe
        if probe is None:
            return (0, None, None)
        try:
            return probe()
        except Exception as exc:
            report_internal_error("requests in flight", exc)
            return (0, None, None)

    def _write_batch(self, batch: Batch, timeout: float | None) -> None:
        now = self._wall_clock()
        in_flight = self._probe_in_flight()
        if not batch and now - self._last_write < _HEARTBEAT_S and in_flight == self._in_flight_written:
            return
        count = batch.request_count
        process = ProcessRow(
            self._host,
            self._pid,
            self.started_at,
            now,
            self.requests_flushed + count,
            *in_flight,
            self.release,
            self.capacity,
        )
        try:
            self.store.write(batch, process)
        except Exception as exc:
            # Kept (bounded) and retried on the next flush, whatever the cause; older than what
            # was folded meanwhile.
            with self._fold_lock:
                newer, self._unsent = self._unsent, batch
                if newer is not None:
                    self._keep(newer)
                if timeout is None:
                    # Once an interval (the background flush) and at exit, never for a read.
                    self._keep_in_spool(now)
            if timeout is not None and isinstance(exc, StoreUnavailable):
                return
            if not isinstance(exc, StoreUnavailable):
                report_internal_error("store write", exc)
            else:
                self._failed_writes += 1
                if self._failed_writes == _TELL_AFTER_FAILURES:
                    logger.warning(
                        "wsgimon: cannot write to the store (%s); keeping statistics in memory and retrying", exc
                    )
            self.store_error = str(exc)
            return
        self.requests_flushed += count
        self.last_flush = self._last_write = now
        if self._spooled and self._spool is not None:
            self._spooled = False
            self._spool.discard(self._spool_name())
        self._in_flight_written = in_flight
        if self._failed_writes >= _TELL_AFTER_FAILURES:
            logger.warning("wsgimon: the store is writable again; statistics kept in memory were written")
        elif self.store_error is not None:
            logger.info(
                "wsgimon: a write to the store failed (%s) and went through with the next one", self.store_error
            )
        self.store_error = None
        self._failed_writes = 0

    def _reap_lost(self) -> None:
        """Count the requests of processes that vanished mid-request, and write what gone processes
        of this host kept in the spool (every ``_REAP_S``, in the background)."""
        now = self._wall_clock()
        if now - self._last_reap < _REAP_S or self.store_error is not None:
            return
        self._last_reap = now
        with contextlib.suppress(StoreUnavailable):
            self.store.reap_lost(self._host, now, pid_exists, _STALE_S)
        if self._spool is not None:
            self._write_spooled(self._spool)

    # -- the spool ---------------------------------------------------------------------
    def _spool_name(self) -> str:
        return f"{self._pid}-{id(self):x}"

    def _keep_in_spool(self, now: float) -> None:
        """The whole unsent batch into this process's spool file (under the fold lock)."""
        batch = self._unsent
        if self._spool is None or batch is None or not has_statistics(batch):
            return
        writer = f"{self._host}|{self._pid}|{self.started_at!r}"
        kept = SpooledBatch(writer, self.release, self.started_at, now, encode_batch(batch), batch.request_count)
        try:
            self._spool.keep(self._spool_name(), kept)
        except (OSError, UnsafeSpool) as exc:
            if not self._spool_warned:
                self._spool_warned = True
                logger.warning("wsgimon: cannot keep unwritten statistics in %s: %s", self._spool.directory, exc)
            return
        self._spooled = True

    def _write_spooled(self, spool: Spool) -> None:
        for path in spool.orphans(pid_exists):
            claimed = spool.claim(path)
            if claimed is None:
                continue
            try:
                kept = spool.read(claimed)
                self.store.append_payloads([(kept.writer, kept.release, kept.started, kept.written, kept.payload)])
            except StoreUnavailable:
                spool.release(claimed)
                return
            except (OSError, UnsafeSpool, CorruptPayload) as exc:
                logger.error("wsgimon: a spooled batch could not be read and was dropped (%s): %s", claimed, exc)
                spool.remove(claimed)
                continue
            spool.remove(claimed)
            logger.warning(
                "wsgimon: %d requests that process %s could not write were written from the spool",
                kept.requests,
                kept.writer,
            )

    @property
    def unsent_requests(self) -> int:
        """Requests not in the store yet: waiting, or in a write under way."""
        return sum(batch.request_count for batch in (self._unsent, self._in_flight) if batch is not None)

    def _fold(self) -> Batch:
        pending = self.pending
        records: list[RawRecord] = []
        # Popped in C; fewer than counted when the request path drops some (overfull).
        with contextlib.suppress(IndexError):
            records.extend(map(deque.popleft, repeat(pending, len(pending))))
        return self._folder.fold(records)


@lru_cache(maxsize=1)
def _host_name() -> str:
    # Once per process: gethostname() costs a system call, and every middleware asks.
    return socket.gethostname()
