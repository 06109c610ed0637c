"""The one Jinja environment: the dashboard, the report and the alert e-mails render their templates with it.

Templates are package data (``wsgimon/templates``); HTML ones are autoescaped. Made once per
process, on first use: ``import wsgimon`` does not import Jinja.
"""

from __future__ import annotations

from functools import lru_cache

from jinja2 import Environment, PackageLoader, select_autoescape

__all__ = ["templates"]


@lru_cache(maxsize=1)
def templates() -> Environment:
    return Environment(
        loader=PackageLoader("wsgimon", "templates"),
        autoescape=select_autoescape(("html",)),
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
