"""Per-sender rate limits: token buckets on an injected clock. Pure: no I/O.

A sender may send ``rate`` messages a second on average, in bursts of up to
``burst``; a refused message is told when the next token comes
(``retry_after_ms``). Time comes from the clock function the caller passes (the hub
passes :func:`gifting.clock.now_ms`), so tests move time instead of sleeping.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

from gifting.core.errors import RateLimited

Clock = Callable[[], int]
"""Milliseconds, from any fixed origin."""

# Past this many senders the least recently active one is forgotten: memory is
# bounded, and a sender forgotten this way was idle longest, so its bucket had
# (almost always) refilled anyway. Nobody can refill another's bucket by
# flooding the table with new senders.
MAX_SENDERS = 100_000


#: The longest ``retry_after_ms`` told (a bucket that never refills says this).
MAX_RETRY_AFTER_MS = 60_000


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

    def wait_ms(self) -> int:
        """Milliseconds until the next token (as of the last :meth:`take`); 0 if there is one."""
        missing = 1.0 - self.tokens
        if missing <= 0:
            return 0
        if self.rate <= 0:
            return MAX_RETRY_AFTER_MS
        return min(MAX_RETRY_AFTER_MS, max(1, math.ceil(missing * 1000 / self.rate)))

    def charge(self) -> None:
        """Take one token, or raise :class:`RateLimited` saying when the next one comes."""
        if not self.take():
            raise RateLimited("too many messages; slow down", retry_after_ms=self.wait_ms())


class SenderLimits:
    """One :class:`TokenBucket` per sender, shared by all of the sender's connections.

    At most ``max_senders`` buckets, least recently active forgotten first.
    """

    __slots__ = ("_buckets", "burst", "clock", "max_senders", "rate")

    def __init__(
        self, rate: float, burst: float, clock: Clock, max_senders: int = MAX_SENDERS
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_senders = max_senders
        self.clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    @property
    def senders(self) -> int:
        """How many senders' buckets are kept."""
        return len(self._buckets)

    def bucket(self) -> TokenBucket:
        """A fresh bucket with these limits (for one connection's own frames)."""
        return TokenBucket(self.rate, self.burst, self.clock)

    def allow(self, sender: str) -> None:
        """Take one of ``sender``'s tokens, or raise :class:`RateLimited` (``retry_after_ms``)."""
        buckets = self._buckets
        bucket = buckets.get(sender)
        if bucket is None:
            bucket = buckets[sender] = TokenBucket(self.rate, self.burst, self.clock)
            if len(buckets) > self.max_senders:
                buckets.popitem(last=False)  # the least recently active
        else:
            buckets.move_to_end(sender)
        bucket.charge()
