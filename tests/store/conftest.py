"""Fixtures of the ledger tests: a controllable clock and a Ledger on the test's own keys."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from gifting.core.catalog import Catalog, load_catalog
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger

from .support import FakeClock


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The packaged default catalog (rose = 1 coin, coins_70 = 70 coins for 99 USD cents)."""
    return load_catalog()


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves by hand (starts mid-January 2026, UTC)."""
    return FakeClock.at("2026-01-15T12:00:00Z")


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    """The test's own key names (a unique prefix: tests never collide)."""
    return Keys(key_prefix)


@pytest.fixture
def ledger(redis: Redis, keys: Keys, catalog: Catalog, clock: FakeClock) -> Ledger:
    """A Ledger on the session Redis, the test's keys, the default catalog and `clock`."""
    return Ledger(redis, keys, catalog, clock=clock)
