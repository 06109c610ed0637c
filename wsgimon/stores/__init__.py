"""Where aggregated statistics live; chosen by the ``storage`` URL."""

from __future__ import annotations

from .base import Batch, ErrorSample, RequestEntry, Store
from .memory import MemoryStore

__all__ = ["Batch", "ErrorSample", "MemoryStore", "RequestEntry", "Store", "open_store"]


def open_store(url: str, *, recent_requests: int) -> Store:
    """Open the store named by ``url``; an unsupported scheme is a configuration error."""
    scheme = url.split("://", 1)[0].lower()
    if scheme == "memory":
        return MemoryStore(recent_requests=recent_requests)
    raise ValueError(f"storage {url!r}: unsupported scheme {scheme!r} (supported: memory://)")
