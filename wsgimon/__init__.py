"""wsgimon: one-line monitoring middleware for any WSGI application."""

from __future__ import annotations

from ._version import __version__
from .checkin import checkin
from .wsgi.integrations.dbapi import instrument_dbapi
from .wsgi.middleware import MonitorMiddleware

__all__ = ["MonitorMiddleware", "__version__", "checkin", "instrument_dbapi"]
