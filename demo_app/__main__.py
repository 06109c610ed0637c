"""Serve the demo on 127.0.0.1, optionally with a steady mix of generated traffic.

With ``--traffic`` it shows every panel of the dashboard from its first minute: a day of
synthetic history up to the moment it starts (two releases, the newer one slower on
``/items/<id>``), SLOs, alerts and incidents told to a stand-in webhook inside this process,
slow requests, and check-ins.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import signal
import sys
import threading
import time

import httpx
from werkzeug.serving import make_server

from . import ITEMS_DELAY_MS, create_app
from .history import REGRESSED_MS, RELEASE, ROUTES, seed_history
from .jobs import CHECKINS, run_jobs
from .receiver import AlertReceiver

#: visited first, so the slow-request, error and N+1 panels have something within seconds
_TOUR = ("/test/slow", "/test/error", "/orders", "/test/server-error", "/test/slow", "/test/slow")
_HISTORY_PEAK_PER_MINUTE = 240.0  # at most, so the backfill stays quick whatever --rate says


def generate_traffic(base_url: str, stop: threading.Event, rate_per_s: float = 5.0, tour: bool = False) -> None:
    """Send a weighted mix of requests until ``stop`` is set (``tour``: first one request of each kind
    that fills a panel)."""
    paths = [route.path for route in ROUTES]
    weights = [route.weight for route in ROUTES]
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        if tour:
            for path in _TOUR:
                if stop.is_set():
                    return
                with contextlib.suppress(httpx.HTTPError):
                    client.get(path)
        while not stop.is_set():
            path = random.choices(paths, weights)[0].format(n=random.randint(1, 500))
            with contextlib.suppress(httpx.HTTPError):
                client.get(path)
            stop.wait(random.expovariate(rate_per_s))


def demo_options(webhook_url: str | None) -> dict[str, object]:
    """What the demo configures beyond wsgimon's defaults (``WSGIMON_*`` variables still apply)."""
    options: dict[str, object] = {
        "release": RELEASE,
        # The demo fails on purpose (about 3 % of requests): objectives it meets on a quiet day.
        "slo_availability": 95.0,
        "slo_latency_ms": 500.0,
        "slo_latency_target": 95.0,
        "checkins": CHECKINS,
    }
    if webhook_url is not None:
        options["webhook_url"] = webhook_url
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description="wsgimon demo app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--traffic", action="store_true", help="generate a steady mix of requests")
    parser.add_argument("--rate", type=float, default=5.0, help="generated requests per second")
    parser.add_argument(
        "--history",
        type=float,
        default=None,
        metavar="HOURS",
        help="backfill synthetic history up to now (default 24 with --traffic)",
    )
    parser.add_argument("--no-alerts", action="store_true", help="no stand-in webhook, so no alerts")
    parser.add_argument("--verbose", action="store_true", help="log every request and traceback")
    args = parser.parse_args()
    if not args.verbose:
        # The demo fails on purpose; wsgimon records it, the console stays readable.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        logging.getLogger("demo_app").setLevel(logging.CRITICAL)
    receiver = None if args.no_alerts else AlertReceiver(say=lambda line: print(line, flush=True)).start()
    app, monitor = create_app(**demo_options(None if receiver is None else receiver.url))
    app.config[ITEMS_DELAY_MS] = REGRESSED_MS  # what RELEASE broke, served for real
    history = args.history if args.history is not None else (24.0 if args.traffic else 0.0)
    if history > 0:
        started = time.perf_counter()
        peak = min(_HISTORY_PEAK_PER_MINUTE, max(30.0, args.rate * 60))
        backfill = seed_history(app, monitor, history, per_minute=peak)
        if backfill is not None:
            print(f"{backfill.describe()} in {time.perf_counter() - started:.1f} s", flush=True)
    server = make_server(args.host, args.port, app, threaded=True)
    base_url = f"http://{args.host}:{server.port}"
    stop = threading.Event()
    threading.Thread(target=run_jobs, args=(monitor.store, stop), name="demo-jobs", daemon=True).start()
    if args.traffic:
        for n in range(2):
            threading.Thread(
                target=generate_traffic, args=(base_url, stop, args.rate / 2, n == 0), name="demo-traffic", daemon=True
            ).start()
    # Stopped by SIGTERM as by Ctrl-C: wsgimon writes what it holds at exit.
    signal.signal(signal.SIGTERM, lambda _signal, _frame: sys.exit(0))
    print(f"demo app on {base_url}/  —  dashboard at {base_url}/monitoring/", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        stop.set()
        time.sleep(0.1)
        server.server_close()
        if receiver is not None:
            receiver.close()


if __name__ == "__main__":
    main()
