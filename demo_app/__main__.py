"""Serve the demo on 127.0.0.1, optionally with a steady mix of generated traffic."""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import threading
import time

import httpx
from werkzeug.serving import make_server

from . import app, monitor
from .history import seed_history

_MIX = (
    ("/test/normal", 50),
    ("/items/{n}", 30),
    ("/orders", 10),
    ("/test/notfound", 6),
    ("/test/error", 4),
    ("/test/server-error", 3),
    ("/test/slow", 2),
    ("/no/such/page/{n}", 5),
)


def generate_traffic(base_url: str, stop: threading.Event, rate_per_s: float = 5.0) -> None:
    """Send a weighted mix of requests until ``stop`` is set."""
    paths = [path for path, _ in _MIX]
    weights = [weight for _, weight in _MIX]
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        while not stop.is_set():
            path = random.choices(paths, weights)[0].format(n=random.randint(1, 500))
            with contextlib.suppress(httpx.HTTPError):
                client.get(path)
            stop.wait(random.expovariate(rate_per_s))


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
        help="backfill synthetic history (default 24 with --traffic)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request and traceback")
    args = parser.parse_args()
    if not args.verbose:
        # The demo fails on purpose; wsgimon records it, the console stays readable.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        app.logger.setLevel(logging.CRITICAL)
    history = args.history if args.history is not None else (24.0 if args.traffic else 0.0)
    if history > 0:
        seeded = seed_history(monitor, history)
        if seeded:
            print(f"backfilled {history:g} h of synthetic history ({seeded} requests)", flush=True)
    server = make_server(args.host, args.port, app, threaded=True)
    base_url = f"http://{args.host}:{server.port}"
    stop = threading.Event()
    if args.traffic:
        for _ in range(2):
            threading.Thread(target=generate_traffic, args=(base_url, stop, args.rate / 2), daemon=True).start()
    print(f"demo app on {base_url}/  —  dashboard at {base_url}/monitoring/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        time.sleep(0.1)
        server.server_close()


if __name__ == "__main__":
    main()
