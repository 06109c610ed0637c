"""The demo starts on its own and fills the monitoring API with generated traffic."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.servers import ROOT, free_port, wait_until


@pytest.mark.slow
def test_demo_with_traffic_shows_data() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDEVMODE", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "demo_app", "--port", str(port), "--traffic", "--rate", "60"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def enough_traffic() -> bool:
            try:
                stats = httpx.get(url + "/monitoring/stats", timeout=2).json()
            except httpx.HTTPError:
                return False
            return bool(stats["requests"] >= 40 and stats["status_codes"].get("404"))

        wait_until(enough_traffic, timeout=30, interval=0.2)
        index = httpx.get(url + "/").text
        assert 'href="/monitoring/"' in index and "/test/error" in index
        assert "wsgimon" in httpx.get(url + "/monitoring/").text
        day = httpx.get(url + "/monitoring/stats?window=24h").json()["requests"]
        assert day > 10_000, "the demo backfills a day of history"
        endpoints = {row["endpoint"] for row in httpx.get(url + "/monitoring/endpoints").json()["endpoints"]}
        assert "/items/<int:item_id>" in endpoints and "/test/normal" in endpoints
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
