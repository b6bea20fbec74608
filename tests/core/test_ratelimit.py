"""Rate limits on a clock the test moves: bursts, refill, senders apart, the memory bound."""

from __future__ import annotations

import pytest

from gifting.core.errors import RateLimited
from gifting.core.ratelimit import SenderLimits, TokenBucket


class Clock:
    """Milliseconds that only move when the test says so."""

    def __init__(self, ms: int = 1_700_000_000_000) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_a_bucket_starts_full_and_allows_one_burst() -> None:
    bucket = TokenBucket(rate=10, burst=5, clock=Clock())
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]


def test_a_bucket_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    while bucket.take():
        pass
    clock.ms += 99  # 0.99 of a token
    assert not bucket.take()
    clock.ms += 1
    assert bucket.take()
    assert not bucket.take()
    clock.ms += 250  # 2.5 tokens
    assert [bucket.take() for _ in range(3)] == [True, True, False]


def test_a_bucket_never_holds_more_than_its_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=3, clock=clock)
    bucket.take()
    clock.ms += 3_600_000
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_a_clock_stepping_back_refills_nothing() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=2, clock=clock)
    assert bucket.take() and bucket.take()
    clock.ms -= 60_000
    assert not bucket.take()
    clock.ms += 100  # measured from the stepped-back time
    assert bucket.take()


def test_sender_limits_keep_senders_apart() -> None:
    clock = Clock()
    limits = SenderLimits(rate=1, burst=2, clock=clock)
    limits.allow("ann")
    limits.allow("ann")
    with pytest.raises(RateLimited):
        limits.allow("ann")
    limits.allow("bob")  # bob has his own bucket
    clock.ms += 1000
    limits.allow("ann")
    with pytest.raises(RateLimited):
        limits.allow("ann")


def test_past_their_bound_sender_limits_forget_only_the_least_recent_sender() -> None:
    clock = Clock()
    limits = SenderLimits(rate=1, burst=1, clock=clock, max_senders=3)
    for sender in ("a", "b", "c"):
        limits.allow(sender)
    with pytest.raises(RateLimited):
        limits.allow("a")  # a is active again (if refused): b is now the least recent
    limits.allow("d")  # a fourth sender: one bucket goes, not all of them
    for sender in ("a", "c", "d"):  # a flooder cannot wipe the others' buckets
        with pytest.raises(RateLimited):
            limits.allow(sender)
    limits.allow("b")  # forgotten: a fresh bucket (the price of the bound)
    assert limits.senders == 3


def test_a_flood_of_new_senders_does_not_refill_an_active_one() -> None:
    clock = Clock()
    limits = SenderLimits(rate=1, burst=1, clock=clock, max_senders=100)
    limits.allow("flooder")
    for i in range(10_000):
        with pytest.raises(RateLimited):
            limits.allow("flooder")  # active, so never the one forgotten
        limits.allow(f"new-{i}")
    assert limits.senders == 100
