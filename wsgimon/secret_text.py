"""Secrets out of any text wsgimon shows or stores: a bottom-level module every layer may use."""

from __future__ import annotations

import re

__all__ = ["without_passwords"]

_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*:)[^/@\s]*@")


def without_passwords(text: str) -> str:
    """``scheme://user:password@host`` becomes ``scheme://user:***@host``: for storage URLs in messages."""
    return _URL_PASSWORD.sub(r"\g<head>***@", text)
