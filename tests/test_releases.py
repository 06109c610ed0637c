"""Releases under real gunicorn sharing one SQLite store: exact per-release counts, regressions, new errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import gunicorn_server, wait_until
from tests.standins.discord import DiscordStandIn

pytestmark = pytest.mark.slow

FAST, CHECKOUTS = 240, 20


@pytest.fixture(autouse=True)
def quiet() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)


@pytest.fixture
def discord() -> Iterator[DiscordStandIn]:
    with DiscordStandIn() as standin:
        yield standin


def env_for(tmp_path: Path, release: str, discord: DiscordStandIn, **app: str) -> dict[str, str]:
    return {
        "WSGIMON_STORAGE": f"sqlite:///{tmp_path}/releases.sqlite3",
        "WSGIMON_FLUSH_INTERVAL": "0.3",
        "WSGIMON_RELEASE": release,
        "WSGIMON_DISCORD_WEBHOOK_URL": discord.webhook_url,
        "WSGIMON_ALERT_RULES": "regression,new_error",
        "WSGIMON_ALERT_INTERVAL_S": "0.5",
        "WSGIMON_ALERT_GROUP_WAIT_S": "3",
        "WSGIMON_ALERT_GROUP_INTERVAL_S": "1",
        **app,
    }


def traffic(url: str) -> None:
    paths = [f"/items/{n}" for n in range(FAST)] + ["/checkout"] * CHECKOUTS

    def send(chunk: list[str]) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            for path in chunk:
                assert client.get(path).status_code in (200, 500)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, [paths[i::8] for i in range(8)]))


def releases(url: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = httpx.get(url + "/monitoring/releases", timeout=10).json()["releases"]
    return rows


def counted(url: str, expected: dict[str, int]) -> bool:
    return {row["release"]: row["requests"] for row in releases(url)} == expected


EVENTS = ("New in release v2: KeyError in GET /checkout", "Release v2 made GET /items/<int:item_id> worse")


def said(discord: DiscordStandIn) -> list[str]:
    """Each message's title and text as a reader sees them (Discord renders the Markdown the channel escapes)."""
    embeds = [r.json["embeds"][0] for r in discord.requests if r.json]
    return [(e["title"] + "\n" + e.get("description", "")).replace("\\", "") for e in embeds]


def test_a_slower_release_with_a_new_error_is_named_and_alerted_once(tmp_path: Path, discord: DiscordStandIn) -> None:
    args = ("-w", "3", "-k", "gthread", "--threads", "4")
    total = FAST + CHECKOUTS
    with gunicorn_server("tests.release_app:app", *args, env=env_for(tmp_path, "v1", discord)) as (url, _):
        traffic(url)
        wait_until(lambda: counted(url, {"v1": total}), timeout=20)
        (v1,) = releases(url)
        assert v1["regressions"] == [] and v1["new_error_types"] == [] and v1["compared_with"] is None
        assert 1 <= v1["processes"] <= 3, "the workers that served"

    bad = {"APP_SLOWNESS_MS": "40", "APP_BREAKS": "1"}
    with gunicorn_server("tests.release_app:app", *args, env=env_for(tmp_path, "v2", discord, **bad)) as (url, _):
        traffic(url)
        wait_until(lambda: counted(url, {"v2": total, "v1": total}), timeout=20)
        v2, v1 = releases(url)
        assert (v2["release"], v1["release"]) == ("v2", "v1")
        assert v2["errors"] == CHECKOUTS and v1["errors"] == 0
        assert v2["new_error_types"] == ["KeyError"]
        (regression,) = [r for r in v2["regressions"] if r["endpoint"] == "/items/<int:item_id>"]
        assert regression["metric"] == "p95" and regression["after"] >= 40
        assert regression["after"] > 3 * regression["before"]
        assert (regression["requests_before"], regression["requests_after"]) == (FAST, FAST)
        assert v1["regressions"] == [] and v1["new_error_types"] == []
        # The release's two events, told once across three workers (one incident's message, or two).
        wait_until(lambda: all(any(event in text for text in said(discord)) for event in EVENTS), timeout=30)
        told = len(discord.requests)
        texts = said(discord)
        assert told <= 2 and all(sum(event in text for text in texts) == 1 for event in EVENTS), texts

    with gunicorn_server("tests.release_app:app", *args, env=env_for(tmp_path, "v3", discord, **bad)) as (url, _):
        traffic(url)
        wait_until(lambda: counted(url, {"v3": total, "v2": total, "v1": total}), timeout=20)
        v3 = releases(url)[0]
        assert v3["release"] == "v3" and v3["compared_with"] == "v2"
        assert v3["regressions"] == [] and v3["new_error_types"] == [], "v3 behaves as v2 did"
    assert len([r for r in discord.requests if r.json]) == told, "nothing more was alerted"


def test_during_a_rolling_deploy_both_releases_are_live(tmp_path: Path, discord: DiscordStandIn) -> None:
    args = ("-w", "2", "-k", "gthread", "--threads", "4")
    with gunicorn_server("tests.release_app:app", *args, env=env_for(tmp_path, "v1", discord)) as (old, _):
        traffic(old)
        with gunicorn_server("tests.release_app:app", *args, env=env_for(tmp_path, "v2", discord)) as (new, _):
            traffic(new)
            for url in (old, new):
                wait_until(lambda url=url: live(url) == {"v2": True, "v1": True}, timeout=20)
        wait_until(lambda: live(old) == {"v2": False, "v1": True}, 20)


def live(url: str) -> dict[str, bool]:
    return {row["release"]: row["processes"] > 0 for row in releases(url)}


def test_the_api_filters_by_release_and_charts_get_deploy_markers(tmp_path: Path) -> None:
    from tests import wsgi_apps
    from tests.helpers import call, get_json
    from wsgimon import MonitorMiddleware

    storage = f"sqlite:///{tmp_path}/filters.sqlite3"
    old = MonitorMiddleware(wsgi_apps.list_app, storage=storage, release="v1")
    for n in range(7):
        call(old, f"/a/{n}")
    old.close()
    new = MonitorMiddleware(wsgi_apps.list_app, storage=storage, release="v2")
    for _ in range(3):
        call(new, "/b")
    assert get_json(new, "/monitoring/stats?window=all")["requests"] == 10
    assert get_json(new, "/monitoring/stats?window=all&release=v1")["requests"] == 7
    only_v2 = get_json(new, "/monitoring/endpoints?window=24h&release=v2")
    assert only_v2["release"] == "v2" and [(row["endpoint"], row["requests"]) for row in only_v2["endpoints"]] == [
        ("/b", 3)
    ]
    series = get_json(new, "/monitoring/timeseries?window=24h&step=1h&release=v1")
    assert sum(point["requests"] for point in series["points"]) == 7
    assert [marker["release"] for marker in series["releases"]] == ["v1", "v2"]
    assert get_json(new, "/monitoring/errors?window=24h&release=v1")["errors"] == []
    unknown = call(new, "/monitoring/stats", query="release=v9")
    assert unknown.status and unknown.status.startswith("404")
    assert "unknown release 'v9'" in json.loads(unknown.body)["error"]
    too_fine = call(new, "/monitoring/timeseries", query="release=v1&step=1m&window=1h")
    assert too_fine.status and too_fine.status.startswith("400")
    assert "1h or more" in json.loads(too_fine.body)["error"]
    assert get_json(new, "/monitoring/releases")["current"] == "v2"
    new.close()
