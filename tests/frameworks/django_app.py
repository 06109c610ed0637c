"""A Django project in one module: ``gunicorn tests.frameworks.django_app:application``."""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="wsgimon-tests-only",
        ALLOWED_HOSTS=["127.0.0.1", "localhost", "testserver"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import Http404, HttpResponse, StreamingHttpResponse  # noqa: E402
from django.urls import include, path  # noqa: E402

from tests.frameworks.common import BOOM, chunks  # noqa: E402
from wsgimon import MonitorMiddleware  # noqa: E402


def index(request: Any) -> HttpResponse:
    return HttpResponse("index")


def hello(request: Any) -> HttpResponse:
    return HttpResponse("hello")


def item(request: Any, item_id: int) -> HttpResponse:
    if item_id == 0:
        raise Http404("no such item")
    return HttpResponse(f"item {item_id}")


def user(request: Any, name: str) -> HttpResponse:
    return HttpResponse(f"user {name}")


def boom(request: Any) -> HttpResponse:
    raise ValueError(BOOM)


def stream(request: Any) -> StreamingHttpResponse:
    return StreamingHttpResponse(chunks(), content_type="text/plain")


def docs(request: Any) -> HttpResponse:
    return HttpResponse("docs")


urlpatterns = [
    path("", index),
    path("hello", hello),
    path("api/", include([path("items/<int:item_id>", item)])),
    path("users/<slug:name>", user),
    path("boom", boom),
    path("stream", stream),
    path("docs/", docs),
]

handler = get_wsgi_application()
application = MonitorMiddleware(handler)
