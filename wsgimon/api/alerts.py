"""``/alerts``: the deployment's recent alerts with each channel's delivery, and the SLO status."""

from __future__ import annotations

import time
from typing import Any

from ..slo import objectives, slo_status
from .context import Context
from .params import Query
from .values import iso

__all__ = ["MAX_LIMIT", "PARAMETERS", "answer"]

PARAMETERS = {"limit"}
MAX_LIMIT = 1000


def answer(ctx: Context, query: Query) -> dict[str, Any]:
    limit = query.integer("limit", default=100, maximum=MAX_LIMIT)
    ctx.flush_own()
    store = ctx.store
    now = time.time()
    engine = ctx.monitor.alerts
    return {
        "alerts": [
            {
                "id": row.id,
                "rule": row.rule,
                "key": row.key,
                "severity": row.severity,
                "state": row.state,
                "title": row.title,
                "summary": row.summary,
                "opened": iso(row.opened_at),
                "sent": iso(row.sent_at),
                "suppressed": row.suppressed,
                "deliveries": row.deliveries,
            }
            for row in store.recent_alerts(limit)
        ],
        "firing": sorted(store.firing_keys()),
        "channels": {} if engine is None else engine.status()["channels"],
        "configured": [] if engine is None else engine.channel_names,
        "slo": [slo_status(store, objective, now).to_json() for objective in objectives(ctx.config)],
    }
