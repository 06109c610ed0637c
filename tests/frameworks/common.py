"""What every framework app serves, so that one test reads them all alike."""

from __future__ import annotations

import time
from collections.abc import Iterator

#: seconds between the chunks of ``/stream``; three chunks, so the body takes two of these
STREAM_PAUSE = 0.1
BOOM = "framework boom: the view failed on purpose"


def chunks() -> Iterator[bytes]:
    for i in range(3):
        if i:
            time.sleep(STREAM_PAUSE)
        yield f"chunk-{i}\n".encode()
