"""The monitoring API against its own OpenAPI document, fuzzed by schemathesis on a live server with data.

The document is read from the demo app's ``/monitoring/openapi.json`` in-process when the module is
imported (schemathesis parametrizes at collection time, before any fixture runs), and a test checks
that the live server serves exactly that document. Every operation is then driven over HTTP through
werkzeug's server with schema-valid and schema-invalid parameters, and every built-in check of the
installed schemathesis runs on every answer, plus checks of the README's own promises (``no-store``,
no negative or non-finite number). A store that holds real traffic matters: empty answers validate
against almost any schema.

The fuzzing tolerates exactly the cross-parameter rules of ``/timeseries`` and the rules of an issue
change or a silence that depend on the clock (``until`` in the future, ``for`` at most 366 days), which OpenAPI
cannot state; at the bounds of ``window`` and ``min_ms`` the document and the server agree (tested below).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, CheckContext, GenerationMode, Response

from demo_app import create_app
from tests.helpers import get_json
from tests.servers import wait_until, werkzeug_server

pytestmark = pytest.mark.slow

PREFIX = "/monitoring"
#: Traffic sent before fuzzing: successes, exceptions, handled 500s, route 404s, unmatched 404s.
TRAFFIC = {
    "/test/normal": 12,
    "/items/7": 4,
    "/items/42": 4,
    "/test/error": 3,
    "/test/server-error": 2,
    "/test/notfound": 2,
    "/no/such/page": 3,
}


def _served_document() -> dict[str, Any]:
    """The document as the middleware serves it, read in-process: collection needs it before any server runs."""
    _, monitor = create_app(storage="memory://")
    try:
        document: dict[str, Any] = get_json(monitor, f"{PREFIX}/openapi.json")
    finally:
        monitor.close()
    return document


DOCUMENT = _served_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(modes=list(GenerationMode), deterministic=True)  # schema-valid and -invalid data


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo app on a SQLite store under werkzeug's threaded server, with every kind of request recorded."""
    for name in ("werkzeug", "demo_app"):  # a line per request and a traceback per /test/error
        logging.getLogger(name).setLevel(logging.CRITICAL)
    path: Path = tmp_path_factory.mktemp("schema-fuzz") / "store.sqlite3"
    app, monitor = create_app(storage=f"sqlite:///{path}", flush_interval=0.2)
    try:
        with werkzeug_server(app) as url, httpx.Client(base_url=url, timeout=10) as client:
            for route, times in TRAFFIC.items():
                for _ in range(times):
                    client.get(route)
            expected = sum(TRAFFIC.values())
            wait_until(lambda: client.get(f"{PREFIX}/stats?window=all").json()["requests"] == expected)
            yield url
    finally:
        monitor.close()


def test_the_fuzzed_document_is_the_one_the_live_server_serves(live: str) -> None:
    answer = httpx.get(f"{live}{PREFIX}/openapi.json", timeout=10)
    assert answer.status_code == 200
    assert answer.json() == DOCUMENT
    # The traffic is there: fuzzing reads real rows, not empty lists.
    stats = httpx.get(f"{live}{PREFIX}/stats?window=all", timeout=10).json()
    assert stats["errors"] == 5 and stats["client_errors"] == 5 and len(stats["error_types"]) >= 3


# -- what the fuzzing tolerates, and why ------------------------------------------------------------

#: Cross-parameter rules of /timeseries: each parameter is valid alone, the combination is not.
_TIMESERIES_RULES = (
    "needs minute data",
    "points; use a larger step",
    "endpoint and method must be given together",
)


#: An issue change or a silence valid by the document that the clock refuses.
_CLOCK_RULES = ("until must be in the future", "for must be at most 366d")


def _error_message(response: Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("error", "")) if isinstance(body, dict) else ""


_CHECKIN_RULES = ("one of every or cron", "bad cron expression", "unknown time zone")


def _known_refusal(case: Case[Any], response: Response) -> bool:
    """A 400 for schema-valid input that is one of the documented gaps, not a new one."""
    if response.status_code != 400:
        return False
    message = _error_message(response)
    if "releases are kept per hour" in message:  # release= with a finer step, or with sparklines
        return case.path in ("/timeseries", "/endpoints")
    if case.path in ("/issues/{id}", "/silences") and case.method.upper() == "POST":
        return any(rule in message for rule in _CLOCK_RULES)
    if case.path.startswith("/checkins/{id}") and case.method.upper() == "POST":
        # Rules on two values together, or a cron expression and a time zone: no schema says them.
        return any(rule in message for rule in _CHECKIN_RULES)
    return case.path == "/timeseries" and any(rule in message for rule in _TIMESERIES_RULES)


def positive_data_acceptance_but_known_gaps(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """schemathesis's positive_data_acceptance, except for the refusals listed above."""
    if _known_refusal(case, response):
        return None
    verdict: bool | None = schemathesis.checks.positive_data_acceptance(ctx, response, case)
    return verdict


def json_answers_are_no_store_and_finite(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """The README's promises for every JSON answer: ``Cache-Control: no-store``, no NaN/inf, no negative number."""
    if "json" not in (response.headers.get("content-type") or [""])[0]:
        return None
    cache_control = response.headers.get("cache-control") or [""]
    assert cache_control[0] == "no-store", f"Cache-Control is {cache_control!r}"
    bad = list(_bad_numbers(response.json()))
    assert not bad, f"negative or non-finite numbers in the answer: {bad[:5]}"
    return True


def _bad_numbers(value: Any, where: str = "$") -> Iterator[tuple[str, Any]]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _bad_numbers(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _bad_numbers(item, f"{where}[{index}]")


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_conforms_to_the_document(case: Case[Any], live: str) -> None:
    """Every built-in check of schemathesis on every operation, positive and negative data."""
    case.call_and_validate(
        base_url=f"{live}{PREFIX}",
        timeout=10,
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
        additional_checks=[positive_data_acceptance_but_known_gaps, json_answers_are_no_store_and_finite],
    )


# -- the bounds: the document and the server agree ---------------------------------------------------


def _parameter_schema(path: str, name: str) -> dict[str, Any]:
    for parameter in DOCUMENT["paths"][path]["get"]["parameters"]:
        if parameter["name"] == name:
            return parameter["schema"]  # type: ignore[no-any-return]
    raise AssertionError(f"{path} has no parameter {name}")


def _admits(parameter_schema: dict[str, Any], value: Any) -> bool:
    """Whether ``value`` is valid for the parameter's schema (the subset of JSON Schema the document uses)."""
    import jsonschema  # type: ignore[import-untyped]

    return bool(jsonschema.Draft202012Validator(parameter_schema).is_valid(value))


@pytest.mark.parametrize(
    ("path", "name", "value", "sent", "valid"),
    [
        ("/stats", "window", "366d", "366d", True),
        ("/stats", "window", "367d", "367d", False),
        ("/endpoints", "window", "7999h", "7999h", True),
        ("/endpoints", "window", "9000h", "9000h", False),
        ("/errors", "window", "99999m", "99999m", True),
        ("/errors", "window", "999999m", "999999m", False),
        ("/requests", "min_ms", 1e-05, "1e-05", True),
        ("/requests", "min_ms", 1e12, "1000000000000.0", True),
        ("/requests", "min_ms", 1e13, "10000000000000.0", False),
    ],
)
def test_values_at_the_bounds_are_valid_for_both_or_for_neither(
    live: str, path: str, name: str, value: Any, sent: str, valid: bool
) -> None:
    assert _admits(_parameter_schema(path, name), value) is valid
    answer = httpx.get(f"{live}{PREFIX}{path}", params={name: sent}, timeout=10)
    assert answer.status_code == (200 if valid else 400), answer.text
