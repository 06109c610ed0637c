"""The app gunicorn serves in the server benchmark: ``WSGIMON_BENCH_VARIANT`` picks the variant."""

from __future__ import annotations

import os

from .peers import VARIANTS

app = VARIANTS[os.environ.get("WSGIMON_BENCH_VARIANT", "bare Flask")]()
