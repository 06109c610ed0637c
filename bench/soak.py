"""Soak run: the demo app under real gunicorn workers sharing one SQLite store, through the faults operators meet.

``python -m bench.soak [--minutes 10] [--workers 4] [--rate 400]`` (not run in CI). Everything is on
127.0.0.1 and in a temporary directory, and everything it starts is stopped at the end.

While a thread pool sends a bounded, steady load (every request and every 5xx counted) and a poller
asks ``/monitoring/health`` every 0.5 s (its latency recorded), the run, in sequence: SIGKILLs a
worker, sends HUP to the master, locks the store for 10 s (``BEGIN EXCLUSIVE`` from another
connection), makes the store's directory and files read-only for 10 s, deletes the store's files,
and restores everything. After each fault the load pauses for a few flush intervals so that what the
store recorded can be compared exactly with what the server answered. A short hostile phase follows:
20,000 requests with made-up methods and 2,000 with 64 KB paths, with the workers' memory before and
after.

Permissions only bite on an unprivileged process (root ignores them), so as root gunicorn's workers
run as ``nobody``; an interpreter that ``nobody`` cannot read (one under ``/root``) is replaced by the
system's interpreter of the same version with this environment's packages on its path.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import http.client
import os
import pwd
import random
import shutil
import signal
import site
import sqlite3
import stat
import string
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
FLUSH_INTERVAL = 1.0
FAULT_S = 10.0  # how long the store stays locked, and read-only
HEALTH_EVERY_S = 0.5
# What the steady load asks for: mostly fast successes, some 404s, a few 500s on purpose.
MIX = (
    ("/test/normal", 0.70),
    ("/items/{n}", 0.20),
    ("/test/notfound", 0.04),
    ("/no/such/page/{n}", 0.035),
    ("/test/server-error", 0.02),
    ("/test/error", 0.005),
)
EXPECTED_5XX = ("/test/server-error", "/test/error")


# -- small helpers ---------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """The first truthy value of ``condition`` within ``timeout`` seconds, else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return None


def get(port: int, path: str, method: str = "GET", timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- processes -------------------------------------------------------------------------------------


@dataclass
class ProcFigures:
    pid: int
    rss_mib: float
    open_files: int
    threads: int

    def __str__(self) -> str:
        return f"pid {self.pid}: RSS {self.rss_mib:.1f} MiB, {self.open_files} open files, {self.threads} threads"


def proc_figures(pid: int) -> ProcFigures | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        open_files = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kib = int(fields["VmRSS"].split()[0])
    return ProcFigures(pid, rss_kib / 1024, open_files, int(fields["Threads"]))


def children_of(parent: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                pids.append(int(entry))
    return sorted(pids)


def in_group(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                pids.append(int(entry))
    return pids


def interpreter_for(user: str | None) -> tuple[str, dict[str, str]]:
    """An interpreter whose files ``user`` can read (workers import after the fork), and its environment."""
    env = {"PYTHONPATH": str(ROOT)}
    if user is None or _runs_as(user, sys.executable, env):
        return sys.executable, env
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(f"python{version}", path="/usr/local/bin:/usr/bin:/bin")
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), *site.getsitepackages()])}
    if system is None or not _runs_as(user, system, env):
        raise SystemExit(f"no Python {version} that user {user} can run; run as an unprivileged user instead")
    log(f"{sys.executable} is not readable by {user}: gunicorn runs on {system} with this environment's packages")
    return system, env


def _runs_as(user: str, python: str, env: dict[str, str]) -> bool:
    probe = "import sqlite3, flask, gunicorn, wsgimon"
    command = ["runuser", "-u", user, "--", python, "-c", probe]
    full_env = {**os.environ, **env, "WSGIMON_ENABLED": "0"}
    try:
        return subprocess.run(command, env=full_env, capture_output=True, timeout=60, cwd="/").returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Gunicorn:
    """``gunicorn -k gthread`` serving ``demo_app:app`` with the store in ``store_dir``; stopped by ``stop()``."""

    def __init__(self, workers: int, store_dir: Path, log_path: Path, user: str | None) -> None:
        self.port = free_port()
        self.workers = workers
        self.store = store_dir / "store.sqlite3"
        self.log_path = log_path
        python, env = interpreter_for(user)
        command = [
            python,
            "-m",
            "gunicorn",
            "--bind",
            f"{HOST}:{self.port}",
            "-w",
            str(workers),
            "-k",
            "gthread",
            "--threads",
            "4",
            "--graceful-timeout",
            "10",
            "--keep-alive",
            "5",
            "--limit-request-line",
            "0",  # no limit: the 64 KB paths of the hostile phase must reach the app
        ]
        if user is not None:
            command += ["--user", user, "--group", grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name]
        command.append("demo_app:app")
        full_env = {
            **os.environ,
            **env,
            "WSGIMON_STORAGE": f"sqlite:///{self.store}",
            "WSGIMON_FLUSH_INTERVAL": str(FLUSH_INTERVAL),
        }
        full_env.pop("PYTHONDEVMODE", None)
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop(); a pipe nobody reads would block
        self.process = subprocess.Popen(
            command, cwd="/", env=full_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        if not wait_for(lambda: self._answers() or self.process.poll() is not None, 30) or self.process.poll():
            self.stop()
            raise SystemExit(f"gunicorn did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
        wait_for(lambda: len(self.worker_pids()) == workers, 30)

    def _answers(self) -> bool:
        try:
            return get(self.port, "/monitoring/health", timeout=2)[0] in (200, 503)
        except OSError:
            return False

    @property
    def master(self) -> int:
        return self.process.pid

    def worker_pids(self) -> list[int]:
        return children_of(self.master)

    def stop(self) -> list[int]:
        """SIGTERM, then SIGKILL to the whole process group; the pids still there afterwards (none expected)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.master, signal.SIGKILL)
                self.process.wait(10)
        wait_for(lambda: not in_group(self.master), 10)
        leftover = in_group(self.master)
        for pid in leftover:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._log.close()
        return leftover


# -- load and health -------------------------------------------------------------------------------


@dataclass
class Counts:
    sent: int = 0
    answered: int = 0
    connection_errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected_5xx: int = 0


class Load:
    """Steady load from a thread pool at a bounded rate, on keep-alive connections; pausable."""

    def __init__(self, port: int, rate: float, threads: int = 16) -> None:
        self.port = port
        self.rate = rate
        self.threads = threads
        self.counts = Counts()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._idle = threading.Semaphore(0)
        self.paused_s = 0.0
        self._paused_at: float | None = None
        self._pool = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]
        self._paths = [path for path, _ in MIX]
        self._weights = [weight for _, weight in MIX]

    def start(self) -> None:
        for thread in self._pool:
            thread.start()

    def pause(self) -> None:
        """Stop sending and wait until every thread is between requests."""
        self._running.clear()
        self._paused_at = time.monotonic()
        for _ in self._pool:
            self._idle.acquire(timeout=15)

    def resume(self) -> None:
        if self._paused_at is not None:
            self.paused_s += time.monotonic() - self._paused_at
            self._paused_at = None
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()
        for thread in self._pool:
            thread.join(15)

    def _run(self, index: int) -> None:
        rng = random.Random(index)
        interval = self.threads / self.rate
        conn: http.client.HTTPConnection | None = None
        next_at = time.monotonic() + rng.random() * interval
        while not self._stop.is_set():
            if not self._running.is_set():
                if conn is not None:
                    conn.close()
                    conn = None
                self._idle.release()
                self._running.wait()
                next_at = time.monotonic()
                continue
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(min(delay, 1.0))
                continue
            next_at = max(next_at + interval, time.monotonic() - 1.0)  # a backlog of at most 1 s
            path = rng.choices(self._paths, self._weights)[0].format(n=rng.randint(1, 10_000))
            with self._lock:
                self.counts.sent += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, self.port, timeout=15)
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                status = response.status
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                with self._lock:
                    self.counts.connection_errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                continue
            with self._lock:
                self.counts.answered += 1
                self.counts.statuses[status] += 1
                if status >= 500 and not path.startswith(EXPECTED_5XX):
                    self.counts.unexpected_5xx += 1
        if conn is not None:
            conn.close()


@dataclass
class HealthSample:
    at: float
    phase: str
    latency_s: float
    code: int  # 0: no answer
    status: str
    detail: str  # the checks that are not ok


class HealthPoller:
    """``/monitoring/health`` every 0.5 s on a fresh connection, as a load balancer asks it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.phase = "warm-up"
        self.samples: list[HealthSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    def _run(self) -> None:
        import json

        while not self._stop.is_set():
            started = time.monotonic()
            code, status, detail = 0, "no answer", ""
            try:
                code, body = get(self.port, "/monitoring/health", timeout=10)
                answer = json.loads(body)
                status = answer.get("status", "?")
                checks = answer.get("checks", {}).items()
                detail = "; ".join(f"{name}: {c['detail']}" for name, c in checks if c.get("status") != "ok")
            except (OSError, http.client.HTTPException, ValueError):
                pass
            latency = time.monotonic() - started
            self.samples.append(HealthSample(time.time(), self.phase, latency, code, status, detail))
            self._stop.wait(max(0.0, HEALTH_EVERY_S - latency))


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    after: str
    answered: int
    recorded: int | None

    @property
    def gap(self) -> int | None:
        return None if self.recorded is None else self.answered - self.recorded


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.total_s = args.minutes * 60.0
        self.user = "nobody" if os.geteuid() == 0 else None
        self.tmp = Path(tempfile.mkdtemp(prefix="wsgimon-soak-"))
        self.store_dir = self.tmp / "store"
        self.store_dir.mkdir(mode=0o700)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.tmp, 0, 0)
            os.chmod(self.tmp, 0o755)
            os.chown(self.store_dir, entry.pw_uid, entry.pw_gid)
        self.notes: list[str] = []
        self.checkpoints: list[Checkpoint] = []
        self.server: Gunicorn | None = None
        self.load: Load | None = None
        self.health: HealthPoller | None = None
        self.kills: list[tuple[int, float | None]] = []  # (pid, its rate just before)

    # -- store faults ------------------------------------------------------------------------------
    def store_files(self) -> list[Path]:
        return [self.store_dir / name for name in ("store.sqlite3", "store.sqlite3-wal", "store.sqlite3-shm")]

    def recorded(self) -> int | None:
        """``/stats?window=all`` once two fresh connections (likely two workers) agree."""
        import json

        assert self.server is not None
        last: int | None = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                code, body = get(self.server.port, "/monitoring/stats?window=all")
            except (OSError, http.client.HTTPException):
                time.sleep(0.5)
                continue
            if code == 200:
                value = int(json.loads(body)["requests"])
                if value == last:
                    return value
                last = value
            time.sleep(0.3)
        return last

    def checkpoint(self, after: str) -> None:
        """Pause the load, let every worker flush, and compare what the store holds with what was answered."""
        assert self.load is not None
        self.load.pause()
        time.sleep(2.5 * FLUSH_INTERVAL)  # every live worker flushes at least once
        recorded = self.recorded()
        point = Checkpoint(after, self.load.counts.answered, recorded)
        self.checkpoints.append(point)
        log(f"checkpoint after {after}: answered {point.answered}, recorded {recorded}, gap {point.gap}")
        self.load.resume()

    def until(self, fraction: float) -> None:
        deadline = self.started + fraction * self.total_s
        while time.monotonic() < deadline:
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    def phase(self, name: str) -> None:
        assert self.health is not None
        self.health.phase = name
        log(name)

    def kill_a_worker(self) -> None:
        server = self.server
        assert server is not None
        self.phase("SIGKILL a worker")
        # The busiest worker (keep-alive connections stay with one worker, so some are idle), by
        # what each flushed over 3 s according to the deployment list of /health: one flush
        # interval at that rate is what its death may lose.
        first, started = self.flushed(), time.monotonic()
        time.sleep(3.0)
        second, took = self.flushed(), time.monotonic() - started
        rates = {
            pid: (second[pid] - first[pid]) / took for pid in server.worker_pids() if pid in first and pid in second
        }
        victim = max(rates, key=rates.__getitem__) if rates else server.worker_pids()[0]
        rate = rates.get(victim)
        self.kills.append((victim, rate))
        # Asking /health may have flushed the victim just now: kill it at a random point of its interval.
        time.sleep(random.uniform(0.0, FLUSH_INTERVAL))
        os.kill(victim, signal.SIGKILL)
        replaced = wait_for(lambda: victim not in (now := server.worker_pids()) and len(now) == server.workers, 30)
        shown = "unknown" if rate is None else f"{rate:.0f} req/s"
        others = ", ".join(f"{r:.0f}" for pid, r in sorted(rates.items()) if pid != victim) or "unknown"
        self.notes.append(
            f"SIGKILL {victim}, the busiest worker ({shown}; the others {others} req/s): "
            f"{'replaced' if replaced else 'NOT replaced in 30 s'}"
        )

    def flushed(self) -> dict[int, int]:
        """Requests each process has written to the store, from the deployment lists of a few /health answers."""
        import json

        assert self.server is not None
        seen: dict[int, int] = {}
        for _ in range(8):  # several answers: any worker may answer, and each lists every process
            try:
                code, body = get(self.server.port, "/monitoring/health")
            except (OSError, http.client.HTTPException):
                continue
            for process in json.loads(body).get("deployment", {}).get("processes", []):
                seen[int(process["pid"])] = max(seen.get(int(process["pid"]), 0), int(process["requests"]))
        return seen

    def hup(self) -> None:
        server = self.server
        assert server is not None
        self.phase("HUP the master")
        before = set(server.worker_pids())
        os.kill(server.master, signal.SIGHUP)
        renewed = wait_for(lambda: not before & set(now := server.worker_pids()) and len(now) == server.workers, 60)
        self.notes.append(f"HUP: workers {'all replaced' if renewed else 'NOT all replaced within 60 s'}")

    def lock_store(self) -> None:
        assert self.server is not None
        self.phase("store locked (BEGIN EXCLUSIVE)")
        holder = sqlite3.connect(self.server.store, timeout=10, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            time.sleep(FAULT_S)
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        self._give_back()
        self.phase("lock released")

    def read_only_store(self) -> None:
        self.phase("store read-only")
        modes = {
            path: stat.S_IMODE(path.stat().st_mode) for path in [self.store_dir, *self.store_files()] if path.exists()
        }
        for path in modes:
            os.chmod(path, 0o500 if path.is_dir() else 0o400)
        try:
            time.sleep(FAULT_S)
        finally:
            for path, mode in modes.items():
                with contextlib.suppress(FileNotFoundError):
                    os.chmod(path, mode)
        self.phase("permissions restored")

    def delete_store(self) -> None:
        assert self.server is not None
        self.phase("store files deleted")
        for path in self.store_files():
            path.unlink(missing_ok=True)
        started = time.monotonic()
        back = wait_for(self.server.store.exists, 30)
        if back:
            owner = pwd.getpwuid(self.server.store.stat().st_uid).pw_name
            mode = stat.filemode(self.server.store.stat().st_mode)
            self.notes.append(f"deleted store restored after {time.monotonic() - started:.1f} s ({owner}, {mode})")
        else:
            self.notes.append("deleted store NOT restored within 30 s")
        self.phase("after the deletion")

    def _give_back(self) -> None:
        # Files a root connection may have created go back to the workers' user.
        if self.user is None:
            return
        entry = pwd.getpwnam(self.user)
        for path in self.store_files():
            with contextlib.suppress(FileNotFoundError):
                os.chown(path, entry.pw_uid, entry.pw_gid)

    # -- hostile phase -----------------------------------------------------------------------------
    def hostile(self, rounds: int = 2) -> list[dict[str, Any]]:
        """Rounds of 20,000 made-up methods and 2,000 paths of 64 KB, all different; worker memory after each."""
        assert self.server is not None
        workers = self.server.worker_pids()
        rng = random.Random(7)
        results = [{"figures": [proc_figures(pid) for pid in workers]}]
        for _ in range(rounds):
            recorded_before = self.recorded() or 0
            methods = ["".join(rng.choices(string.ascii_uppercase + "-_", k=rng.randint(3, 12))) for _ in range(20_000)]
            jobs = [(method, "/test/normal" if i % 2 else f"/x/{i}") for i, method in enumerate(methods)]
            jobs += [("GET", "/" + "".join(rng.choices(string.ascii_lowercase + "/", k=65_535))) for _ in range(2_000)]
            rng.shuffle(jobs)
            result = self._send_all(jobs)
            time.sleep(2.5 * FLUSH_INTERVAL)
            result["recorded"] = (self.recorded() or 0) - recorded_before
            result["figures"] = [proc_figures(pid) for pid in workers]
            results.append(result)
        return results

    def _send_all(self, jobs: list[tuple[str, str]]) -> dict[str, Any]:
        assert self.server is not None
        port = self.server.port
        statuses: Counter[int] = Counter()
        errors: Counter[str] = Counter()
        deadline = time.monotonic() + 600
        lock = threading.Lock()

        def send(share: list[tuple[str, str]]) -> None:
            conn: http.client.HTTPConnection | None = None
            for method, path in share:
                if time.monotonic() > deadline:
                    break
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(HOST, port, timeout=15)
                    conn.request(method, path)
                    response = conn.getresponse()
                    response.read()
                    with lock:
                        statuses[response.status] += 1
                    if response.will_close:
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException) as exc:
                    with lock:
                        errors[type(exc).__name__] += 1
                    if conn is not None:
                        conn.close()
                    conn = None
            if conn is not None:
                conn.close()

        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, [jobs[i::8] for i in range(8)]))
        return {
            "took_s": time.monotonic() - started,
            "statuses": dict(sorted(statuses.items())),
            "errors": dict(errors),
        }

    # -- the whole run -----------------------------------------------------------------------------
    def run(self) -> None:
        log(f"temporary directory {self.tmp}; gunicorn -w {self.args.workers} -k gthread --threads 4, user {self.user}")
        self.server = Gunicorn(self.args.workers, self.store_dir, self.tmp / "gunicorn.log", self.user)
        self.load = Load(self.server.port, self.args.rate)
        self.health = HealthPoller(self.server.port)
        self.started = time.monotonic()
        self.health.start()
        self.load.start()
        self.until(0.08)
        figures_before = [proc_figures(pid) for pid in self.server.worker_pids()]
        self.checkpoint("warm-up")
        self.until(0.15)
        self.kill_a_worker()
        self.checkpoint("SIGKILL of a worker")
        self.until(0.30)
        self.hup()
        self.checkpoint("HUP")
        self.until(0.45)
        self.lock_store()
        self.checkpoint("the lock")
        self.until(0.60)
        self.read_only_store()
        self.checkpoint("read-only")
        self.until(0.75)
        self.delete_store()
        self.checkpoint("the deletion")
        self.until(1.0)
        self.health.phase = "end"
        self.load.pause()
        main_s = time.monotonic() - self.started
        time.sleep(2.5 * FLUSH_INTERVAL)
        recorded = self.recorded()
        figures_after = [proc_figures(pid) for pid in self.server.worker_pids()]
        self.load.stop()
        self.health.phase = "hostile"
        log("hostile phase: 2 rounds of 20,000 made-up methods and 2,000 paths of 64 KB")
        hostile = self.hostile()
        self.health.stop()
        self.report(main_s, recorded, figures_before, figures_after, hostile)

    def stop(self) -> None:
        if self.load is not None:
            self.load.stop()
        if self.health is not None:
            self.health.stop()
        if self.server is not None:
            leftover = self.server.stop()
            print(f"\nstopped gunicorn; processes left over: {leftover or 'none'}")
            print("\n== wsgimon's log lines ==")
            for line, count in wsgimon_lines(self.server.log_path):
                print(f"  {count:>5} × {line}")
            print("\n== gunicorn's own notable lines ==")
            for line, count in gunicorn_lines(self.server.log_path):
                print(f"  {count:>5} × {line}")
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- the report --------------------------------------------------------------------------------
    def report(
        self,
        main_s: float,
        recorded: int | None,
        before: list[ProcFigures | None],
        after: list[ProcFigures | None],
        hostile: list[dict[str, Any]],
    ) -> None:
        assert self.load is not None and self.health is not None
        counts = self.load.counts
        active_s = main_s - self.load.paused_s
        rate = counts.answered / active_s
        # One flush interval of each killed worker, at the rate it had just before (all the traffic if unknown).
        bound = sum((own if own is not None else rate) * FLUSH_INTERVAL for _, own in self.kills)
        print("\n== steady load with faults ==")
        print(
            f"duration {main_s:.0f} s ({active_s:.0f} s under load, the rest paused at checkpoints) "
            f"at {rate:.0f} req/s answered ({self.args.rate:.0f} asked)"
        )
        print(f"requests sent {counts.sent}, answered {counts.answered}, connection errors {counts.connection_errors}")
        print(f"statuses {dict(sorted(counts.statuses.items()))}")
        five = sum(n for code, n in counts.statuses.items() if code >= 500)
        print(f"5xx {five}, of which unexpected (not /test/error or /test/server-error): {counts.unexpected_5xx}")
        lost = None if recorded is None else counts.answered - recorded
        print(f"recorded (/monitoring/stats?window=all) {recorded}; lost {lost}")
        print(
            f"expected bound on the loss: one flush interval ({FLUSH_INTERVAL:g} s) of each of the {len(self.kills)} "
            f"killed worker(s) at its own rate just before: ≤ {bound:.0f}"
        )
        print("checkpoints (load paused, every worker flushed): answered − recorded")
        for point in self.checkpoints:
            print(f"  after {point.after:<22} answered {point.answered:>7}  recorded {point.recorded}  gap {point.gap}")
        for note in self.notes:
            print(f"  {note}")
        print("\n== /monitoring/health every 0.5 s ==")
        latencies = [s.latency_s * 1000 for s in self.health.samples]
        print(
            f"{len(latencies)} polls; latency max {max(latencies):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms, "
            f"p50 {percentile(latencies, 0.5):.1f} ms"
        )
        for name in dict.fromkeys(s.phase for s in self.health.samples):
            samples = [s for s in self.health.samples if s.phase == name]
            ms = [s.latency_s * 1000 for s in samples]
            seen = Counter(f"{s.code} {s.status}" for s in samples)
            print(
                f"  {name:<32} {len(samples):>4} polls  max {max(ms):7.1f} ms  p99 {percentile(ms, 0.99):7.1f} ms  "
                f"{dict(seen)}"
            )
            for detail, count in Counter(_generic(s.detail) for s in samples if s.detail).most_common(3):
                print(f"      {count} × {detail[:220]}")
        print("\n== workers (from /proc) ==")
        print("after warm-up:")
        for figures in before:
            print(f"  {figures}")
        print("at the end of the faults (other processes: a kill and a HUP replaced them):")
        for figures in after:
            print(f"  {figures}")
        print("\n== hostile phase ==")
        for index, result in enumerate(hostile[1:], 1):
            print(
                f"round {index}: 20,000 made-up methods + 2,000 paths of 64 KB in {result['took_s']:.0f} s: "
                f"statuses {result['statuses']}, connection errors {result['errors'] or 0}; "
                f"recorded {result['recorded']} of 22000"
            )
        print("worker RSS (MiB) before / after round 1 / after round 2; open files; threads:")
        for per_round in zip(*(result["figures"] for result in hostile), strict=True):
            known: list[ProcFigures] = [f for f in per_round if f is not None]
            if known:
                rss = " / ".join(f"{f.rss_mib:.1f}" for f in known)
                files = " / ".join(str(f.open_files) for f in known)
                threads = " / ".join(str(f.threads) for f in known)
                print(f"  pid {known[0].pid}: {rss}; {files}; {threads}")


def _generic(text: str) -> str:
    """Numbers replaced, so that alike details count together."""
    import re

    return re.sub(r"[0-9]+(\.[0-9]+)?", "N", text)


def wsgimon_lines(path: Path) -> list[tuple[str, int]]:
    """wsgimon's own log lines (its messages start with 'wsgimon'), counted."""
    counts: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("wsgimon"):
            counts[line[:300]] += 1
    return sorted(counts.items(), key=lambda kv: -kv[1])


def gunicorn_lines(path: Path) -> list[tuple[str, int]]:
    counts: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("[") and ("[ERROR]" in line or "[WARNING]" in line or "signal" in line.lower()):
            # Drop the time stamp and pids so that alike lines count together.
            text = line.split("] ", 2)[-1]
            counts["".join("N" if c.isdigit() else c for c in text)[:200]] += 1
    return sorted(counts.items(), key=lambda kv: -kv[1])[:20]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the run with faults (at least 2)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--rate", type=float, default=400.0, help="requests per second of the steady load")
    args = parser.parse_args(argv)
    if args.minutes < 2:
        parser.error("--minutes must be at least 2 (the faults take about 80 s)")
    soak = Soak(args)

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        soak.run()
    finally:
        soak.stop()


if __name__ == "__main__":
    main()
