"""Outbound HTTP through ``httpx`` (sync, and async when the event loop runs on the request's thread).

httpx has event hooks per client but none for every client, so ``Client.send`` and
``AsyncClient.send`` are wrapped once per process, when httpx is imported. A call outside a
request (wsgimon's own alert deliveries run in their own threads) costs a look-up that finds
nothing.
The time is the wait for the response's head (a streamed body is the caller's to read).
"""

from __future__ import annotations

import sys
from time import perf_counter
from typing import Any

from ..time_spent import for_calls

__all__ = ["install"]

_installed = False


def install() -> bool:
    """Wrap httpx's clients; False when httpx is not imported (nothing to hook yet)."""
    global _installed
    if _installed:
        return True
    httpx = sys.modules.get("httpx")
    if httpx is None or not hasattr(httpx, "AsyncClient"):
        return False
    sync_send = httpx.Client.send
    async_send = httpx.AsyncClient.send

    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        spent = for_calls()
        if spent is None:
            return sync_send(self, request, *args, **kwargs)
        started = perf_counter()
        try:
            response = sync_send(self, request, *args, **kwargs)
        except BaseException as exc:
            _told(spent, request, type(exc).__name__, started)
            raise
        _told(spent, request, response.status_code, started)
        return response

    async def send_async(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        spent = for_calls()
        if spent is None:
            return await async_send(self, request, *args, **kwargs)
        started = perf_counter()
        try:
            response = await async_send(self, request, *args, **kwargs)
        except BaseException as exc:
            _told(spent, request, type(exc).__name__, started)
            raise
        _told(spent, request, response.status_code, started)
        return response

    send.__wrapped__ = sync_send  # type: ignore[attr-defined]
    send_async.__wrapped__ = async_send  # type: ignore[attr-defined]
    httpx.Client.send = send
    httpx.AsyncClient.send = send_async
    _installed = True
    return True


def _told(spent: Any, request: Any, outcome: int | str, started: float) -> None:
    url = request.url
    scheme = url.scheme
    port = url.port
    host = url.host
    if ":" in host:
        host = f"[{host}]"
    origin = f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}"
    # As sent (still percent-encoded, like http.client's), without the query.
    path = url.raw_path.decode("ascii", "replace").split("?", 1)[0]
    spent.call(request.method, origin, path or "/", outcome, perf_counter() - started)
