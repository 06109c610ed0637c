"""wsgimon: one-line monitoring middleware for any WSGI application."""

from __future__ import annotations

__version__ = "0.1.0"

from .middleware import MonitorMiddleware  # noqa: E402

__all__ = ["MonitorMiddleware", "__version__"]
