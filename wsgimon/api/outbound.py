"""``/outbound``: the HTTP targets requests called (method, origin, path template), the most time first."""

from __future__ import annotations

from typing import Any

from ..stats.dependencies import HTTP
from .context import Context
from .dependencies import MAX_LIMIT, PARAMETERS, dependency_answer
from .params import Query

__all__ = ["MAX_LIMIT", "PARAMETERS", "answer"]


def answer(ctx: Context, query: Query) -> dict[str, Any]:
    return dependency_answer(ctx, query, HTTP, "outbound")
