"""Reconnect delays: capped exponential backoff with jitter.

A room full of clients that lost the same hub must not come back in the same
millisecond, so every delay is drawn at random from the upper part of its
step: ``[(1 - jitter) × d, d]`` where ``d = min(maximum, initial × factor^n)``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff"]

# factor ** attempt overflows a float long before this; the cap applies anyway.
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before reconnect attempt ``n`` (0-based).

    ``initial`` and ``maximum`` are seconds; ``jitter`` in ``[0, 1]`` is the
    share of each delay drawn at random (0: fixed delays, 1: anywhere in
    ``[0, d]``, "full jitter").
    """

    initial: float = 0.1
    maximum: float = 10.0
    factor: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("need 0 < initial <= maximum")
        if self.factor < 1:
            raise ValueError("factor must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def ceiling(self, attempt: int) -> float:
        """The largest delay of attempt ``attempt``: ``min(maximum, initial × factor^n)``."""
        n = min(max(attempt, 0), _MAX_EXPONENT)
        return min(self.maximum, self.initial * self.factor**n)

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """A delay for attempt ``attempt``, in ``[(1 - jitter) × ceiling, ceiling]``."""
        ceiling = self.ceiling(attempt)
        return ceiling * (1.0 - self.jitter * rand())
