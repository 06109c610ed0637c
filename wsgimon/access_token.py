"""The token wsgimon makes for a deployment that configured no credentials (see ``wsgimon token``)."""

from __future__ import annotations

import secrets

__all__ = ["new_access_token"]


def new_access_token() -> str:
    """256 random bits, URL-safe: what goes into the store the first time a process needs one."""
    return secrets.token_urlsafe(32)
