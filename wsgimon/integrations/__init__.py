"""Framework integrations, each imported only when its framework is in use.

The middleware asks :func:`find_integration` what it wraps. Each framework's
module has a ``detect(app) -> Integration | None`` that is called only when
that framework is already imported (``import wsgimon`` imports none), and
answers what the framework can tell wsgimon cheaply:

- ``route_at_start(environ, status)``: the route template, read on the request
  thread when the response starts (Flask: its request object is gone after);
- ``route_at_end(environ)``: the route template, read when the record is made
  (Bottle keeps its route in the environ);
- ``matcher(method, path)``: the template for a raw path, called off the
  request thread (cached), for requests the two above do not name;
- ``close()``: undo what ``detect`` connected (signal receivers).

Exceptions that a framework turns into a 500 itself reach wsgimon through the
environ key ``wsgimon.exception`` (see :mod:`wsgimon.captured`), route names
through ``wsgimon.endpoint``: any framework hook or user code may write them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..endpoints import RouteMatcher

__all__ = ["Integration", "find_integration", "FRAMEWORKS"]

Environ = dict[str, Any]

#: framework module name -> wsgimon integration module
FRAMEWORKS = {"flask": "flask", "django": "django", "bottle": "bottle", "falcon": "falcon", "pyramid": "pyramid"}


@dataclass(frozen=True)
class Integration:
    name: str
    route_at_start: Callable[[Environ, str], str | None] | None = None
    route_at_end: Callable[[Environ], str | None] | None = None
    matcher: RouteMatcher | None = None
    close: Callable[[], None] | None = None


def find_integration(app: Any) -> Integration | None:
    """The integration for the framework behind ``app``, or None for a plain WSGI callable."""
    for framework, module_name in FRAMEWORKS.items():
        if framework not in sys.modules:
            continue
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ImportError:
            continue
        integration: Integration | None = module.detect(app)
        if integration is not None:
            return integration
    return None
