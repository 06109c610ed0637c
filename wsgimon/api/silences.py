"""``/silences``: mute alerts by rule, endpoint, issue or severity for a while, with a reason.

Kept in the store, so every worker and host obeys; a silenced alert stays in ``/alerts``, marked.
``POST /silences`` makes one, ``POST /silences/<id>`` with ``{"expire": true}`` ends it now.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..alerts.silencing import parse_silence
from ..alerts.state import Silence
from .alerts import silence_json
from .context import Context
from .params import BadRequest, Query

__all__ = ["PARAMETERS", "answer", "create", "expire"]

PARAMETERS: set[str] = set()


class NoSuchSilence(BadRequest):
    status = 404


def answer(ctx: Context, query: Query) -> dict[str, Any]:
    now = time.time()
    return {"silences": [silence_json(s, now) for s in ctx.store.alerting_view(now).silences]}


def _object(body: bytes) -> dict[str, Any]:
    try:
        asked = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        asked = None
    if not isinstance(asked, dict):
        raise BadRequest('the body must be a JSON object such as {"rule": "error_rate", "for": "1h", "reason": "…"}')
    return asked


def create(ctx: Context, body: bytes, item: str | None) -> dict[str, Any]:
    now = time.time()
    try:
        make = parse_silence(_object(body), now)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    silence: Silence = ctx.store.add_silence(make)
    return silence_json(silence, now)


def expire(ctx: Context, body: bytes, item: str | None) -> dict[str, Any]:
    asked = _object(body)
    if asked != {"expire": True}:
        raise BadRequest('to end a silence now, send {"expire": true}')
    if item is None or not item.isascii() or not item.isdigit() or len(item) > 12:
        raise BadRequest("a silence id is the number given by /silences")
    now = time.time()
    ended = ctx.store.expire_silence(int(item), now)
    if ended is None:
        raise NoSuchSilence(f"no silence {item}")
    return silence_json(ended, now)
