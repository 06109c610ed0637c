"""The HTML dashboard: one self-contained page, served under a strict Content-Security-Policy.

The page has inline CSS and JS only, allowed by a fresh nonce per response, and
reaches nothing but the JSON API of the same origin. Every value from requests
reaches the page through ``textContent`` or attribute setters in its script,
never as markup, so attacker-controlled paths and messages render as text.
"""

from __future__ import annotations

import secrets

from werkzeug.wrappers import Response

from ..rendering import templates

__all__ = ["render_dashboard"]


def render_dashboard(prefix: str, version: str) -> Response:
    nonce = secrets.token_urlsafe(18)
    html = templates().get_template("dashboard.html").render(prefix=prefix, version=version, nonce=nonce)
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    return response
