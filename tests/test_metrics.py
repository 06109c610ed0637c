"""/monitoring/metrics: a valid exposition, scraped by a real Prometheus, counters that never go down."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import wsgi_apps
from tests.helpers import call
from tests.servers import free_port, gunicorn_server, wait_until
from tests.test_gunicorn_workers import send_plan, worker_pids
from wsgimon import MonitorMiddleware

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
TOKEN = "scrape-token-0123456789abcdef"


@pytest.fixture(autouse=True)
def quiet() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)


def need(tool: str | None, name: str) -> str:
    if tool is None:
        if os.environ.get("CI"):
            raise AssertionError(f"{name} is missing (make test installs Debian's prometheus)")
        pytest.skip(f"{name} is not installed (Debian's prometheus package)")
    return tool


def hostile_monitor() -> MonitorMiddleware:
    def name(environ: dict[str, Any]) -> str:
        return str(environ.get("HTTP_X_NAME") or environ["PATH_INFO"])

    monitor = MonitorMiddleware(wsgi_apps.list_app, storage="memory://", endpoint=name)
    for header in ('/quote"d', "/back\\slash", "/new\nline", "/ünïcode"):
        call(monitor, "/x", HTTP_X_NAME=header)
    call(monitor, "/boom")
    return monitor


def test_promtool_finds_the_exposition_clean_and_values_add_up() -> None:
    promtool = need(PROMTOOL, "promtool")
    monitor = hostile_monitor()
    raising, _ = wsgi_apps.raising_app, None
    boom = MonitorMiddleware(raising, storage="memory://")
    call(boom, "/fail")
    for target in (monitor, boom):
        answer = call(target, "/monitoring/metrics")
        assert answer.status == "200 OK"
        assert ("Content-Type", "text/plain; version=0.0.4; charset=utf-8") in answer.headers
        checked = subprocess.run([promtool, "check", "metrics"], input=answer.body, capture_output=True, timeout=30)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    text = call(monitor, "/monitoring/metrics").body.decode()
    assert 'endpoint="/quote\\"d"' in text and 'endpoint="/back\\\\slash"' in text and 'endpoint="/new\\nline"' in text
    assert 'wsgimon_build_info{version="' in text
    exceptions = call(boom, "/monitoring/metrics").body.decode()
    assert 'wsgimon_http_exceptions_total{endpoint="/fail",method="GET",type="ValueError"} 1' in exceptions


def test_openmetrics_when_asked() -> None:
    monitor = hostile_monitor()
    answer = call(monitor, "/monitoring/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    text = answer.body.decode()
    assert ("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8") in answer.headers
    assert "# TYPE wsgimon_http_requests counter" in text and text.endswith("# EOF\n")
    assert "# TYPE wsgimon_build info" in text


def test_histogram_buckets_are_exact_at_their_bounds() -> None:
    # Far from the bounds: a sleep is a lower bound, and a loaded machine only adds to it.
    durations = {"/a": 0.0, "/b": 0.1, "/c": 2.5}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        time.sleep(durations[environ["PATH_INFO"]])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    monitor = MonitorMiddleware(app, storage="memory://", metrics_buckets="0.05,2,60")
    for path in durations:
        call(monitor, path)
    text = call(monitor, "/monitoring/metrics").body.decode()
    bucket = 'wsgimon_http_request_duration_seconds_bucket{endpoint="%s",method="GET",le="%s"} %d'
    assert bucket % ("/a", "0.05", 1) in text
    assert bucket % ("/b", "0.05", 0) in text and bucket % ("/b", "2.0", 1) in text
    assert bucket % ("/c", "2.0", 0) in text and bucket % ("/c", "60.0", 1) in text
    assert bucket % ("/c", "+Inf", 1) in text


def test_metrics_need_the_same_access_as_the_api() -> None:
    monitor = MonitorMiddleware(wsgi_apps.list_app, storage="memory://", token=TOKEN)
    assert call(monitor, "/monitoring/metrics", REMOTE_ADDR="203.0.113.9").status.startswith("401")  # type: ignore[union-attr]
    allowed = call(monitor, "/monitoring/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert allowed.status == "200 OK"


@pytest.fixture
def prometheus_server() -> Iterator[tuple[str, Path]]:
    """A real Prometheus on 127.0.0.1, scraping whatever target the test writes into its file."""
    binary = need(PROMETHEUS, "prometheus")
    directory = Path(tempfile.mkdtemp(prefix="wsgimon-prometheus-"))
    port = free_port()
    targets = directory / "targets.yml"
    targets.write_text("[]\n")
    (directory / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: wsgimon\n    metrics_path: /monitoring/metrics\n"
        f"    authorization:\n      credentials: {TOKEN}\n"
        f"    file_sd_configs:\n      - files: ['{targets}']\n        refresh_interval: 1s\n"
    )
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(url) or process.poll() is not None, timeout=30)
        assert process.poll() is None, "prometheus exited"
        yield url, targets
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()
        shutil.rmtree(directory, ignore_errors=True)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def query(url: str, promql: str) -> float | None:
    answer = httpx.get(url + "/api/v1/query", params={"query": promql}, timeout=5).json()
    assert answer["status"] == "success", answer
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


@pytest.mark.slow
def test_a_real_prometheus_scrapes_three_workers_exactly(tmp_path: Path, prometheus_server: tuple[str, Path]) -> None:
    prom, targets = prometheus_server
    env = {
        "WSGIMON_STORAGE": f"sqlite:///{tmp_path}/shared.sqlite3",
        "WSGIMON_FLUSH_INTERVAL": "0.2",
        "WSGIMON_TOKEN": TOKEN,
    }
    with gunicorn_server("demo_app:app", "-w", "3", "-k", "gthread", "--threads", "2", env=env) as (url, master):
        targets.write_text(f"- targets: ['{url.removeprefix('http://')}']\n")
        sent = send_plan(url)
        total = "sum(wsgimon_http_requests_total)"
        wait_until(lambda: query(prom, total) == sent, timeout=30)
        # The true p95 of /test/normal lies in the bucket that histogram_quantile answers from.
        buckets = 'wsgimon_http_request_duration_seconds_bucket{endpoint="/test/normal"}'
        p95 = query(prom, f"histogram_quantile(0.95, sum by (le) ({buckets}))")
        stats = httpx.get(url + "/monitoring/endpoints?window=all", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        (row,) = [r for r in stats["endpoints"] if r["endpoint"] == "/test/normal"]
        true_p95_s = row["latency_ms"]["p95"] / 1000
        bounds = [0.0, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]
        holding = next(i for i in range(1, len(bounds)) if true_p95_s <= bounds[i] * 1.01)
        assert p95 is not None and bounds[holding - 1] <= p95 <= bounds[holding]
        # Counters never go down: a graceful reload and a SIGKILL after the flush keep every count.
        before = query(prom, total)
        master.send_signal(signal.SIGHUP)
        sent += send_plan(url)
        wait_until(lambda: query(prom, total) == sent, timeout=30)
        os.kill(worker_pids(master.pid)[0], signal.SIGKILL)
        wait_until(lambda: len(worker_pids(master.pid)) == 3, 20)
        sent += send_plan(url)
        wait_until(lambda: (query(prom, total) or 0) >= sent * 0.97, timeout=30)
        rate_drops = query(prom, "sum(resets(wsgimon_http_requests_total[5m]))")
        assert before is not None and before <= (query(prom, total) or 0)
        assert not rate_drops, "a counter went down"


def test_every_query_of_the_grafana_dashboard_is_valid_promql(prometheus_server: tuple[str, Path]) -> None:
    import json

    from tests.servers import ROOT

    prom, _ = prometheus_server
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(expressions) >= 8
    for expr in expressions:
        concrete = expr.replace("$__rate_interval", "1m").replace("$job", ".*")
        query(prom, concrete)  # asserts Prometheus parsed and ran it
