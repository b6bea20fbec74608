"""Per-sender rate limits: token buckets on an injected clock. Pure: no I/O.

A sender may send ``rate`` messages a second on average, in bursts of up to
``burst``. Time comes from the clock function the caller passes (the hub
passes :func:`gifting.clock.now_ms`), so tests move time instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable

from gifting.core.errors import RateLimited

Clock = Callable[[], int]
"""Milliseconds, from any fixed origin."""

# Past this many senders the table starts again empty: a sender forgotten this
# way gets a full burst, which bounds memory at the cost of a little leniency.
MAX_SENDERS = 100_000


class TokenBucket:
    """``rate`` tokens a second, up to ``burst``; starts full."""

    __slots__ = ("_clock", "_stamp", "burst", "rate", "tokens")

    def __init__(self, rate: float, burst: float, clock: Clock) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self._clock = clock
        self._stamp = clock()

    def take(self) -> bool:
        """Take one token if there is one."""
        now = self._clock()
        # A wall clock may step back: that refills nothing rather than draining.
        elapsed_ms = max(0, now - self._stamp)
        self.tokens = min(self.burst, self.tokens + elapsed_ms * self.rate / 1000)
        self._stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class SenderLimits:
    """One :class:`TokenBucket` per sender, shared by all of the sender's connections."""

    __slots__ = ("_buckets", "_clock", "burst", "max_senders", "rate")

    def __init__(
        self, rate: float, burst: float, clock: Clock, max_senders: int = MAX_SENDERS
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_senders = max_senders
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, sender: str) -> None:
        """Take one of ``sender``'s tokens, or raise :class:`RateLimited`."""
        bucket = self._buckets.get(sender)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, self._clock)
            self._buckets[sender] = bucket
            if len(self._buckets) > self.max_senders:
                self._buckets.clear()
        if not bucket.take():
            raise RateLimited("too many messages; slow down")
