"""Suite-wide settings.

The tiny judge takes a minute or two to build and warm-start, and many tests use it (local runs,
the real worker in e2e, the benchmarks' smoke runs). One model cache for the whole session
builds each seed once; a developer's repeated runs reuse it (``.selftaught/`` is git-ignored,
and the cache key includes the recipe version, so a changed recipe rebuilds).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SELFTAUGHT_CACHE", str(ROOT / ".selftaught" / "test-cache"))
