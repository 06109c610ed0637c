"""A plain app named by raw path, served by gunicorn in the endpoint-cap test."""

from __future__ import annotations

from tests.wsgi_apps import list_app
from wsgimon import MonitorMiddleware

application = MonitorMiddleware(list_app, endpoint=lambda environ: environ["PATH_INFO"])
