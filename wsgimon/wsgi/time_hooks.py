"""Installs the hooks that time queries and outbound calls, for the libraries the app has imported.

Called when a middleware is made, at its process's first request and at each flush, so a
library imported later (in a view, say) is hooked from then on. Each hook is installed once
per process, whichever middleware asked; a middleware that does not capture simply has its
requests not found by them (see :func:`wsgimon.wsgi.time_spent.track`).
"""

from __future__ import annotations

import threading

from ..internal_errors import report_internal_error
from .integrations import django_db, http_client, httpx_client, sqlalchemy_events

__all__ = ["install_hooks"]

_QUERY_HOOKS = (sqlalchemy_events.install, django_db.install)
_CALL_HOOKS = (http_client.install, httpx_client.install)
_done: set[str] = set()
_lock = threading.Lock()


def install_hooks(queries: bool, calls: bool) -> None:
    """Hook what is importable now; never raises (a hook that fails is logged and left out)."""
    wanted = (_QUERY_HOOKS if queries else ()) + (_CALL_HOOKS if calls else ())
    for install in wanted:
        name = install.__module__
        if name in _done:
            continue
        # A middleware made while another's flusher checks: one installs, never both (a patch
        # applied twice would count each call twice).
        with _lock:
            if name in _done:
                continue
            try:
                if install():
                    _done.add(name)
            except Exception as exc:
                _done.add(name)
                report_internal_error("time hooks", exc)
