"""Property tests: wsgimon is invisible to the server and the app, and what it reports adds up.

Hypothesis draws PEP 3333-valid requests (any latin-1 path, query, header values and method token)
and apps (any status 100–999 with any reason, any header list, bodies as lists, tuples, generators,
iterables with ``close()`` and ``wsgi.file_wrapper`` files; ``start_response`` called eagerly or in the
first iteration, with ``exc_info`` before or after the headers went out; an exception before or after
``start_response``, at any chunk or in ``close()``; clients that go away mid-body). Each request runs
through a miniature server twice, once plain and once wrapped, and the server must see the same events
in the same order: status, headers, ``write()`` calls, every chunk, the very exception objects the app
raised, where they surfaced, and one ``close()`` of the app's body.

Then the numbers: after a sequence of such requests, every JSON answer of the API is a 200 with finite,
non-negative numbers, and the totals agree with each other and with what was sent.

The bugs these properties found each keep a test of their own at the end.
"""

from __future__ import annotations

import io
import json
import math
import string
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from wsgiref.validate import WSGIWarning, validator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import call, make_environ
from wsgimon import MonitorMiddleware

PREFIX = "/monitoring"
COMMON = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- requests --------------------------------------------------------------------------------------

LATIN1 = st.characters(min_codepoint=0, max_codepoint=0xFF)
TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"


def _utf8_as_latin1(text: str) -> str:
    # What a server hands over for a UTF-8 path: its bytes, one latin-1 character each.
    return text.encode("utf-8").decode("latin-1")


_segment = st.one_of(
    st.text(LATIN1, max_size=12),
    st.text(max_size=6).map(_utf8_as_latin1),
    st.sampled_from(["%", "%2F", "?", "?a=1", "%00", "..", "users", "42", "0af3c9d2e1b4", "é"]),
    st.integers(-(10**6), 10**12).map(str),
)
_short_path = st.lists(_segment, max_size=5).map(lambda parts: "/" + "/".join(parts))
_long_path = st.tuples(st.text(LATIN1, min_size=1, max_size=4), st.integers(600, 20_000)).map(
    lambda part: "/" + (part[0] * part[1])[: part[1]]
)
PATHS = st.one_of(_short_path, _short_path, _short_path, _long_path, st.just(PREFIX + "x"), st.just(PREFIX + "-not"))
QUERIES = st.one_of(
    st.just(""),
    st.text(LATIN1, max_size=40),
    st.sampled_from(["password=hunter2&page=2", "a=%zz&b", "token=" + "t" * 3000, "?&=&"]),
)
METHODS = st.one_of(
    st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"]),
    st.text(TCHAR, min_size=1, max_size=40),
)
HEADERS_IN = st.dictionaries(
    st.from_regex(r"HTTP_[A-Z][A-Z0-9_]{0,15}", fullmatch=True).filter(
        lambda key: key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH")
    ),
    st.text(LATIN1, max_size=30),
    max_size=4,
)


@dataclass(frozen=True)
class Request:
    path: str
    query: str
    method: str
    headers: dict[str, str]

    def environ(self, file_wrapper: type | None = None) -> dict[str, Any]:
        extra: dict[str, Any] = dict(self.headers)
        if file_wrapper is not None:
            extra["wsgi.file_wrapper"] = file_wrapper
        return make_environ(self.path, self.method, self.query, **extra)


def _not_the_api(path: str) -> bool:
    return not (path == PREFIX or path.startswith(PREFIX + "/"))


REQUESTS = st.builds(Request, PATHS.filter(_not_the_api), QUERIES, METHODS, HEADERS_IN)

# -- apps ------------------------------------------------------------------------------------------

_REASON = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=20)
STATUSES = st.builds(lambda code, reason: f"{code} {reason}", st.integers(100, 999), _REASON)
_HEADER_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True).filter(
    lambda name: not name.endswith("-") and name.lower() != "status"
)
_HEADER_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=30)
_CONTENT_LENGTH = st.one_of(
    st.integers(-(10**6), 10**30).map(str), st.sampled_from(["", "abc", " 7 ", "1_0", "0x10", "-0", "-5"])
)
HEADER_LISTS = st.lists(
    st.one_of(
        st.tuples(_HEADER_NAME, _HEADER_VALUE),
        st.tuples(st.just("Content-Type"), st.sampled_from(["text/plain", "application/json; charset=utf-8"])),
        st.tuples(st.sampled_from(["Content-Length", "content-length"]), _CONTENT_LENGTH),
    ),
    max_size=5,
)
CHUNKS = st.lists(st.one_of(st.just(b""), st.binary(min_size=1, max_size=24)), max_size=5)
BODY_KINDS = ("list", "tuple", "generator", "closing", "file")


class AppError(Exception):
    """An exception class of the app's own: recorded by its name like any other."""


EXCEPTIONS = st.sampled_from([ValueError, RuntimeError, KeyError, OSError, AppError])


@dataclass(frozen=True)
class Script:
    """What one app does; the same script drives the plain and the wrapped run."""

    status: str
    headers: tuple[tuple[str, str], ...]
    chunks: tuple[bytes, ...]
    body: str
    late: bool  # start_response in the first iteration of the body
    writes: tuple[bytes, ...]  # through write() before returning (eager start only)
    failure: str | None
    at: int  # the next() that raises, or after how many chunks exc_info comes (iter, exc_info_after)
    exc_type: type[Exception]
    block: int  # file_wrapper block size
    reads: int | None  # the client goes away after this many chunks (None: reads everything)


def _failures_for(body: str) -> list[str | None]:
    failures: list[str | None] = [None, "before_start", "after_start"]
    if body != "file":  # a file is opened once the response is settled: exc_info adds nothing there
        failures.append("exc_info")
    if body in ("generator", "closing", "file"):
        failures.append("iter")
    if body in ("closing", "file"):
        failures.append("close")
    if body in ("generator", "closing"):
        failures.append("exc_info_after")
    return failures


#: Every (body, late start, failure, client goes away) an app and a client can combine, drawn uniformly:
#: left to itself, a derandomized run can miss whole combinations.
SHAPES = [
    (body, late, failure, gone)
    for body in BODY_KINDS
    for late in ((False, True) if body in ("generator", "closing") else (False,))
    for failure in _failures_for(body)
    for gone in (False, True)
]


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    body, late, failure, gone = draw(st.sampled_from(SHAPES))
    chunks = tuple(draw(CHUNKS))
    return Script(
        status=draw(STATUSES),
        headers=tuple(draw(HEADER_LISTS)),
        chunks=chunks,
        body=body,
        late=late,
        writes=() if late else tuple(draw(st.lists(st.binary(max_size=8), max_size=2))),
        failure=failure,
        at=draw(st.integers(0, len(chunks))),
        exc_type=draw(EXCEPTIONS),
        block=draw(st.integers(1, 16)),
        reads=draw(st.integers(1, 4)) if gone else None,
    )


@dataclass
class Trace:
    """What the app side saw of one run: its exceptions (by identity), its bodies' close() calls."""

    raised: list[BaseException] = field(default_factory=list)
    closes: int = 0
    generators: list[Any] = field(default_factory=list)
    environ_seen: dict[str, Any] | None = None

    def fail(self, script: Script, where: str) -> BaseException:
        exc = script.exc_type(f"{where} ({script.exc_type.__name__})")
        self.raised.append(exc)
        return exc


class AppFile:
    """The file-like an app hands to ``wsgi.file_wrapper``; may fail on a read or on close()."""

    def __init__(self, data: bytes, script: Script, trace: Trace) -> None:
        self._data = io.BytesIO(data)
        self._script = script
        self._trace = trace
        self._reads = 0

    def read(self, size: int = -1) -> bytes:
        if self._script.failure == "iter" and self._reads == self._script.at:
            raise self._trace.fail(self._script, "read")
        self._reads += 1
        return self._data.read(size)

    def close(self) -> None:
        self._trace.closes += 1
        if self._script.failure == "close":
            raise self._trace.fail(self._script, "close")


class ClosingBody:
    """An iterable with close(), as frameworks return."""

    def __init__(self, chunks: Callable[[], Iterator[bytes]], script: Script, trace: Trace) -> None:
        self._chunks = chunks
        self._script = script
        self._trace = trace

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks()

    def close(self) -> None:
        self._trace.closes += 1
        if self._script.failure == "close":
            raise self._trace.fail(self._script, "close")


def make_app(script: Script, trace: Trace) -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
    """The app ``script`` describes; everything it raises is noted in ``trace`` (the server compares identities)."""
    replacement = ("500 Internal Server Error", [("Content-Type", "text/plain")])

    def begin(start_response: Any) -> Any:
        if script.failure == "before_start":
            raise trace.fail(script, "before start_response")
        write = start_response(script.status, list(script.headers))
        if script.failure == "exc_info":
            try:
                raise trace.fail(script, "replaced by exc_info")
            except Exception:
                write = start_response(*replacement, sys.exc_info())
        if script.failure == "after_start":
            raise trace.fail(script, "after start_response")
        return write

    def chunks(start_response: Any) -> Iterator[bytes]:
        if script.late:
            begin(start_response)
        for index, chunk in enumerate(script.chunks):
            if script.failure == "iter" and index == script.at:
                raise trace.fail(script, f"at chunk {index}")
            if script.failure == "exc_info_after" and index == script.at:
                try:
                    raise trace.fail(script, f"exc_info after chunk {index}")
                except Exception:
                    start_response(*replacement, sys.exc_info())  # re-raises once the headers went out
                yield b"replaced"
                return
            yield chunk
        if script.failure == "iter" and script.at == len(script.chunks):
            raise trace.fail(script, "at the end")
        if script.failure == "exc_info_after" and script.at == len(script.chunks):
            try:
                raise trace.fail(script, "exc_info at the end")
            except Exception:
                start_response(*replacement, sys.exc_info())
            yield b"replaced"

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        trace.environ_seen = environ
        if not script.late:
            write = begin(start_response)
            for data in script.writes:
                write(data)
        if script.body == "list":
            return list(script.chunks)
        if script.body == "tuple":
            return tuple(script.chunks)
        if script.body == "file":
            filelike = AppFile(b"".join(script.chunks), script, trace)
            file_body: Iterable[bytes] = environ["wsgi.file_wrapper"](filelike, script.block)
            return file_body
        if script.body == "closing":
            return ClosingBody(lambda: chunks(start_response), script, trace)
        generator = chunks(start_response)
        trace.generators.append(generator)
        return generator

    return app


class ServerFileWrapper:
    """The server's own ``wsgi.file_wrapper`` class: it must come back as it is (sendfile)."""

    def __init__(self, filelike: Any, block_size: int = 8192) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> Iterator[bytes]:
        return iter(lambda: self.filelike.read(self.block_size), b"")

    def close(self) -> None:
        self.filelike.close()


# -- the server ------------------------------------------------------------------------------------

Event = tuple[Any, ...]


@dataclass
class Served:
    """Everything a server saw of one request, and the status a client would have received."""

    events: list[Event]
    client_status: int | None
    app_failed: bool


def serve(app: Any, request: Request, script: Script, trace: Trace) -> Served:
    """Drive ``app`` as a PEP 3333 server does; headers go out with the first non-empty data."""
    events: list[Event] = []
    state: dict[str, Any] = {"status": None, "sent": None, "app_status": None}
    environ = request.environ(ServerFileWrapper)

    def describe(exc: BaseException) -> Event:
        for index, raised in enumerate(trace.raised):
            if exc is raised:
                return ("app's exception", index)
        return ("foreign", type(exc).__name__, str(exc))

    def send(data: bytes) -> None:
        if data and state["sent"] is None:
            state["sent"] = state["status"]

    def write(data: bytes) -> None:
        if state["status"] is None:
            raise AssertionError("write() before start_response()")
        events.append(("write", data))
        send(data)

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        events.append(("start_response", status, tuple(headers), None if exc_info is None else describe(exc_info[1])))
        if exc_info is not None:
            try:
                if state["sent"] is not None:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif state["status"] is not None:
            raise AssertionError("start_response() called twice without exc_info")
        state["status"] = state["app_status"] = status
        return write

    def failed(where: str, exc: BaseException) -> None:
        events.append(("raised", where, describe(exc)))
        if where != "close" and state["sent"] is None:
            state["status"] = "500 Internal Server Error"  # what the server answers instead

    try:
        body = app(environ, start_response)
    except Exception as exc:
        events.append(("the app got the server's environ", trace.environ_seen is environ))
        failed("call", exc)
        return _served(events, state, trace, script)
    events.append(("the app got the server's environ", trace.environ_seen is environ))
    if type(body) is list:
        events.append(("returned a list", len(body)))
    elif isinstance(body, ServerFileWrapper):
        events.append(("returned the server's file wrapper",))
    else:
        events.append(("returned an iterable",))
    try:
        iterator = iter(body)
        count = 0
        while script.reads is None or count < script.reads:
            try:
                chunk = next(iterator)
            except StopIteration:
                break
            if type(chunk) is not bytes:
                raise AssertionError(f"non-bytes chunk {chunk!r}")
            if chunk and state["status"] is None:
                raise AssertionError("body before start_response()")
            events.append(("chunk", chunk))
            send(chunk)
            count += 1
        else:
            events.append(("client went away",))
    except Exception as exc:
        failed("iteration", exc)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            try:
                close()  # a successful close() is seen from the app's side (closes), not noted here
            except Exception as exc:
                failed("close", exc)
    return _served(events, state, trace, script)


def _served(events: list[Event], state: dict[str, Any], trace: Trace, script: Script) -> Served:
    events.append(("app bodies closed", trace.closes, [g.gi_frame is None for g in trace.generators]))
    status = state["sent"] or state["status"]
    # A file the server reads is the server's business: wsgimon keeps its object (sendfile) and sees
    # neither a read error nor the 500 the server answers for it, only the app's status.
    invisible = script.body == "file" and script.failure == "iter"
    if invisible:
        status = state["app_status"]
    return Served(events, None if status is None else int(status[:3]), bool(trace.raised) and not invisible)


def run_plain_and_wrapped(request: Request, script: Script, monitor_options: dict[str, Any]) -> tuple[Served, Served]:
    plain_trace, wrapped_trace = Trace(), Trace()
    plain = serve(make_app(script, plain_trace), request, script, plain_trace)
    monitor = MonitorMiddleware(make_app(script, wrapped_trace), **monitor_options)
    try:
        wrapped = serve(monitor, request, script, wrapped_trace)
    finally:
        monitor.close()
    return plain, wrapped


# -- (a) transparency ------------------------------------------------------------------------------


@settings(COMMON, max_examples=1000)
@given(request=REQUESTS, script=scripts())
def test_the_server_sees_what_it_would_see_without_wsgimon(request: Request, script: Script) -> None:
    plain, wrapped = run_plain_and_wrapped(request, script, {"storage": "memory://"})
    assert wrapped.events == plain.events
    closes = plain.events[-1][1]
    returned_a_body = not any(event[:2] == ("raised", "call") for event in plain.events)
    if returned_a_body and script.body in ("closing", "file"):
        assert closes == 1, "the app's body is closed exactly once"
    assert all(plain.events[-1][2]), "every generator body is finished or closed"


@settings(COMMON, max_examples=300)
@given(request=REQUESTS, script=scripts())
def test_wsgimon_stays_within_pep_3333_on_both_sides(request: Request, script: Script) -> None:
    """wsgiref's validator between the server and wsgimon, and between wsgimon and the app.

    The validator also asks for a Content-Type (none for 204/304) and warns about unknown methods;
    the app is adjusted to the first, and the second is not wsgimon's business.
    """
    code = int(script.status[:3])
    headers = tuple(h for h in script.headers if h[0].lower() != "content-type")
    if code not in (204, 304):
        headers += (("Content-Type", "text/plain"),)
    script = replace(script, headers=headers)
    trace = Trace()
    monitor = MonitorMiddleware(validator(make_app(script, trace)), storage="memory://")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Unknown REQUEST_METHOD", category=WSGIWarning)
            served = serve(validator(monitor), request, script, trace)
    finally:
        monitor.close()
    foreign = [event for event in served.events if event[0] == "raised" and event[2][0] == "foreign"]
    assert not foreign, f"the validator (or the server) complained: {foreign}"


# -- (b) the numbers add up ------------------------------------------------------------------------

API_READS = (
    "/stats",
    "/stats?window=all",
    "/stats?window=5m",
    "/endpoints",
    "/endpoints?window=all&sparkline=10&sort=p95",
    "/requests?limit=1000",
    "/requests?status=5xx",
    "/errors",
    "/errors?window=all",
    "/timeseries",
    "/timeseries?window=1h&step=1m",
    "/health",
)


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} in a JSON answer")

    return json.loads(text, parse_constant=refuse)


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


def read_api(monitor: MonitorMiddleware) -> dict[str, Any]:
    """Every answer of the API: a 200, JSON without NaN or infinities, no negative number anywhere."""
    answers: dict[str, Any] = {}
    for url in API_READS:
        path, _, query = url.partition("?")
        result = call(monitor, PREFIX + path, query=query)
        assert result.status == "200 OK", (url, result.status, result.body[:300])
        answer = _strict_json(result.body.decode("utf-8"))
        bad = list(_bad_numbers(answer))
        assert not bad, f"{url}: {bad[:5]}"
        answers[url] = answer
    return answers


def _sum_counts(rows: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for row in rows:
        for key, count in row.items():
            total[key] = total.get(key, 0) + count
    return total


@settings(COMMON, max_examples=150)
@given(
    exchanges=st.lists(st.tuples(REQUESTS, scripts()), min_size=1, max_size=8),
    api_calls=st.integers(0, 2),
)
def test_after_the_requests_the_statistics_add_up(exchanges: list[tuple[Request, Script]], api_calls: int) -> None:
    monitor = MonitorMiddleware(lambda environ, start_response: [], storage="memory://")
    expected: list[tuple[int, bool]] = []
    try:
        for request, script in exchanges:
            trace = Trace()
            monitor.app = make_app(script, trace)
            served = serve(monitor, request, script, trace)
            assert served.client_status is not None, "every request gets a status (the server's 500 at worst)"
            expected.append((served.client_status, served.app_failed))
            for _ in range(api_calls):  # monitoring requests in between are not counted
                assert call(monitor, PREFIX + "/stats").status == "200 OK"
        monitor.flush()
        answers = read_api(monitor)
    finally:
        monitor.close()
    n = len(exchanges)
    stats, every = answers["/stats"], answers["/stats?window=all"]
    for totals in (stats, every, answers["/stats?window=5m"]):
        assert totals["requests"] == n
        assert totals["errors"] + totals["client_errors"] <= totals["requests"]
        assert sum(totals["status_codes"].values()) == n
        assert 0 <= totals["error_rate"] <= 1
    # The request log, newest first, says what each request got, and whether it failed.
    log = answers["/requests?limit=1000"]["requests"]
    assert [(row["status"], row["error_type"] is not None) for row in reversed(log)] == [
        (status, failed or status >= 400) for status, failed in expected
    ]
    assert every["errors"] == sum(1 for status, failed in expected if failed or status >= 500)
    assert every["client_errors"] == sum(1 for status, failed in expected if not failed and 400 <= status < 500)
    # Rows of /endpoints add up to the totals.
    for window_url, endpoints_url in (
        ("/stats", "/endpoints"),
        ("/stats?window=all", "/endpoints?window=all&sparkline=10&sort=p95"),
    ):
        rows = answers[endpoints_url]["endpoints"]
        for key in ("requests", "errors", "client_errors"):
            assert sum(row[key] for row in rows) == answers[window_url][key], (endpoints_url, key)
        assert _sum_counts(row["status_codes"] for row in rows) == answers[window_url]["status_codes"]
    # Errors by type agree between /stats and /errors; the series adds up to the window.
    error_rows = answers["/errors?window=all"]["errors"]
    assert _sum_counts([{row["type"]: row["count"]} for row in error_rows]) == every["error_types"]
    assert sum(point["requests"] for point in answers["/timeseries?window=1h&step=1m"]["points"]) == n
    assert sum(point["requests"] for point in answers["/timeseries"]["points"]) == n
    latency = every["latency_ms"]
    assert latency["min"] <= latency["p50"] <= latency["p99"] <= latency["max"]
    assert answers["/health"]["status"] in ("ok", "degraded")


# -- cases these properties found, each kept as a test ----------------------------------------------


def _one(script: Script, request: Request | None = None) -> tuple[Served, Served]:
    return run_plain_and_wrapped(request or Request("/x", "", "GET", {}), script, {"storage": "memory://"})


def _failing_twice(trace: Trace, script: Script) -> Any:
    """An app whose body raises while it is iterated, and again in close()."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])

        def chunks() -> Iterator[bytes]:
            yield b"a"
            raise trace.fail(script, "while iterated")

        return ClosingBody(chunks, script, trace)

    return app


@pytest.mark.parametrize("failure", ["close() after the last chunk", "iteration, then close()"])
def test_an_exception_from_close_reaches_the_server_from_close(failure: str) -> None:
    script = Script("200 OK", (), (b"a", b"b"), "closing", False, (), "close", 0, ValueError, 4, None)
    request = Request("/x", "", "GET", {})
    if failure == "close() after the last chunk":
        plain, wrapped = run_plain_and_wrapped(request, script, {"storage": "memory://"})
    else:
        plain_trace, wrapped_trace = Trace(), Trace()
        plain = serve(_failing_twice(plain_trace, script), request, script, plain_trace)
        monitor = MonitorMiddleware(_failing_twice(wrapped_trace, script), storage="memory://")
        wrapped = serve(monitor, request, script, wrapped_trace)
        monitor.close()
    assert wrapped.events == plain.events


def _recorded(script: Script) -> tuple[Served, dict[str, Any]]:
    """One request of ``script`` through wsgimon: what the server saw, and the request log's row for it."""
    trace = Trace()
    monitor = MonitorMiddleware(make_app(script, trace), storage="memory://")
    try:
        served = serve(monitor, Request("/x", "", "GET", {}), script, trace)
        (row,) = _strict_json(call(monitor, PREFIX + "/requests").body.decode())["requests"]
    finally:
        monitor.close()
    return served, row


def test_the_status_recorded_is_the_one_sent_when_exc_info_comes_too_late() -> None:
    script = Script("200 OK", (), (b"sent",), "generator", False, (), "exc_info_after", 1, ValueError, 4, None)
    served, row = _recorded(script)
    assert served.client_status == 200 and served.events[-2] == ("raised", "iteration", ("app's exception", 0))
    assert (row["status"], row["error_type"]) == (200, "ValueError")


def test_data_sent_through_write_counts_as_sent() -> None:
    script = Script("200 OK", (), (), "generator", False, (b"written",), "iter", 0, ValueError, 4, None)
    served, row = _recorded(script)
    assert served.client_status == 200 and ("write", b"written") in served.events
    assert (row["status"], row["error_type"]) == (200, "ValueError")


def _file_app(content_length: str) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", content_length)])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"abc"))

    return app


def _serve_file(monitor: MonitorMiddleware) -> None:
    environ = make_environ("/file")
    environ["wsgi.file_wrapper"] = ServerFileWrapper

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        return lambda data: None

    body = monitor(environ, start_response)
    list(body)
    body.close()  # type: ignore[attr-defined]


def test_an_exception_from_a_file_wrappers_close_is_recorded() -> None:
    script = Script("200 OK", (), (b"abc",), "file", False, (), "close", 0, ValueError, 4, None)
    served, row = _recorded(script)
    assert served.events[-2] == ("raised", "close", ("app's exception", 0))
    assert row["error_type"] == "ValueError"


def test_a_negative_content_length_is_not_a_negative_size() -> None:
    monitor = MonitorMiddleware(_file_app("-5"), storage="memory://")
    _serve_file(monitor)
    (row,) = _strict_json(call(monitor, PREFIX + "/requests").body.decode())["requests"]
    monitor.close()
    assert row["response_bytes"] is None or row["response_bytes"] >= 0


@pytest.mark.internal_errors
def test_a_huge_content_length_does_not_stop_the_sqlite_store(tmp_path: Any) -> None:
    from tests import wsgi_apps

    file_app = _file_app("9" * 30)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] == "/file":
            return file_app(environ, start_response)
        return wsgi_apps.list_app(environ, start_response)

    monitor = MonitorMiddleware(app, storage=f"sqlite:///{tmp_path}/store.sqlite3", flush_interval=30)
    try:
        _serve_file(monitor)
        for _ in range(5):
            call(monitor, "/ok")
        monitor.flush()
        stats = _strict_json(call(monitor, PREFIX + "/stats", query="window=all").body.decode())
    finally:
        monitor.close()
    assert stats["requests"] == 6
