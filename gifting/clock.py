"""The one clock of the server, so tests can move time (month rollover, combos, expiry)."""

from __future__ import annotations

import time
from collections.abc import Callable

_now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000  # noqa: E731


def now_ms() -> int:
    """Return the current time in integer milliseconds since the Unix epoch (UTC)."""
    return _now_ms()


def set_clock(fn: Callable[[], int] | None) -> None:
    """Replace the clock (tests only); ``None`` restores the real one."""
    global _now_ms
    _now_ms = fn if fn is not None else (lambda: time.time_ns() // 1_000_000)
