"""``/queries``: the statements requests ran, normalised (no literal, no parameter), the most time first,
with their N+1s (requests in which one ran ``n_plus_one_repeats`` times or more)."""

from __future__ import annotations

from typing import Any

from ..stats.dependencies import DB
from .context import Context
from .dependencies import MAX_LIMIT, PARAMETERS, dependency_answer
from .params import Query

__all__ = ["MAX_LIMIT", "PARAMETERS", "answer"]


def answer(ctx: Context, query: Query) -> dict[str, Any]:
    return dependency_answer(ctx, query, DB, "queries")
