"""Bad input of any kind gets a clear error and changes nothing (docs/contract.md §3.6, 3.7).

Every case prices and spends like the hub does (``price_*`` then
``Ledger.spend``) and asserts both the error and that not one key of the test
changed: wallet, spend results, combo and outbox.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from gifting.core.catalog import Catalog
from gifting.core.errors import BadRequest, Forbidden, GiftingError, UnknownItem
from gifting.core.pricing import Priced, price_badge, price_effect, price_gift, price_highlight
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger, SpendOrder

from .support import (
    CREATOR,
    STREAM,
    badge_order,
    buy,
    gift_order,
    highlight_order,
    of_type,
    outbox_entries,
    snapshot,
)

pytestmark = pytest.mark.cluster

OrderMaker = Callable[[Catalog], SpendOrder]


def _gift(
    gift: object = "rose",
    count: object = 1,
    sender: str = "alice",
    cid: str = "m1",
    creator: str = CREATOR,
) -> OrderMaker:
    return lambda c: SpendOrder(sender, "Alice", cid, price_gift(c, gift, count), STREAM, creator)


def _priced(priced: Callable[[Catalog], Priced], text: str = "") -> OrderMaker:
    return lambda c: SpendOrder("alice", "Alice", "m1", priced(c), STREAM, CREATOR, text)


BAD_ORDERS: dict[str, tuple[OrderMaker, type[GiftingError]]] = {
    # counts at the edges of the integer range, and wrong types
    "count 0": (_gift(count=0), BadRequest),
    "count -1": (_gift(count=-1), BadRequest),
    "count -2**63": (_gift(count=-(2**63)), BadRequest),
    "count 2**53": (_gift(count=2**53), BadRequest),
    "count 2**53+1": (_gift(count=2**53 + 1), BadRequest),
    "count 2**63": (_gift(count=2**63), BadRequest),
    "count 2**64": (_gift(count=2**64), BadRequest),
    "count max+1": (_gift(count=1001), BadRequest),
    "count True": (_gift(count=True), BadRequest),
    "count False": (_gift(count=False), BadRequest),
    "count 1.5": (_gift(count=1.5), BadRequest),
    "count 1.0": (_gift(count=1.0), BadRequest),
    "count nan": (_gift(count=float("nan")), BadRequest),
    "count '3'": (_gift(count="3"), BadRequest),
    "count None": (_gift(count=None), BadRequest),
    "count [1]": (_gift(count=[1]), BadRequest),
    # unknown items, wrong types of item ids
    "unknown gift": (_gift(gift="unicorn"), UnknownItem),
    "gift in capitals": (_gift(gift="ROSE"), UnknownItem),
    "gift with space": (_gift(gift="rose "), UnknownItem),
    "empty gift": (_gift(gift=""), UnknownItem),
    "gift not a string": (_gift(gift=5), BadRequest),
    "gift None": (_gift(gift=None), BadRequest),
    "effect id of a gift": (_priced(lambda c: price_effect(c, "rose")), UnknownItem),
    "unknown effect": (_priced(lambda c: price_effect(c, "smoke")), UnknownItem),
    "effect not a string": (_priced(lambda c: price_effect(c, ["confetti"])), BadRequest),
    "unknown badge": (_priced(lambda c: price_badge(c, "king")), UnknownItem),
    "badge not a string": (_priced(lambda c: price_badge(c, 1)), BadRequest),
    "unknown highlight": (_priced(lambda c: price_highlight(c, "tier9", "hi")), UnknownItem),
    "highlight not a string": (_priced(lambda c: price_highlight(c, 1, "hi")), BadRequest),
    # highlighted comment text
    "tier1 over 80": (_priced(lambda c: price_highlight(c, "tier1", "x" * 81)), BadRequest),
    "tier2 over 150": (_priced(lambda c: price_highlight(c, "tier2", "x" * 151)), BadRequest),
    "tier3 over 300": (_priced(lambda c: price_highlight(c, "tier3", "x" * 301)), BadRequest),
    "empty text": (_priced(lambda c: price_highlight(c, "tier1", "")), BadRequest),
    "blank text": (_priced(lambda c: price_highlight(c, "tier1", "   ")), BadRequest),
    "text with NUL": (_priced(lambda c: price_highlight(c, "tier1", "a\x00b")), BadRequest),
    "text with ESC": (_priced(lambda c: price_highlight(c, "tier1", "a\x1bb")), BadRequest),
    "text not a string": (_priced(lambda c: price_highlight(c, "tier1", 5)), BadRequest),
    # message ids (the idempotency key, part of a Redis key name)
    "id of 65 chars": (_gift(cid="m" * 65), BadRequest),
    "empty id": (_gift(cid=""), BadRequest),
    "id with NUL": (_gift(cid="m\x00"), BadRequest),
    "id with newline": (_gift(cid="m\n1"), BadRequest),
    "id with DEL": (_gift(cid="m\x7f"), BadRequest),
    "id with space": (_gift(cid="m 1"), BadRequest),
    "id with braces": (_gift(cid="{w00}"), BadRequest),
    "id with one brace": (_gift(cid="m{"), BadRequest),
    "id with colon": (_gift(cid="m:1"), BadRequest),
    "id with a quote": (_gift(cid='m"1'), BadRequest),
    "id non-ascii": (_gift(cid="mé"), BadRequest),
    "id not a string": (_gift(cid=17), BadRequest),  # type: ignore[arg-type]
    # senders (a wallet key): the same rules
    "sender of 65 chars": (_gift(sender="a" * 65), BadRequest),
    "empty sender": (_gift(sender=""), BadRequest),
    "sender with colon": (_gift(sender="alice:x"), BadRequest),
    "sender with braces": (_gift(sender="{alice}"), BadRequest),
    "sender with space": (_gift(sender="ali ce"), BadRequest),
    # nobody gifts their own stream (their own effect is allowed: tests/hub/test_self_purchase.py)
    "self-gift": (_gift(sender=CREATOR), Forbidden),
}


@pytest.mark.parametrize("case", list(BAD_ORDERS))
async def test_bad_spend_is_refused_and_changes_nothing(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog, case: str
) -> None:
    make, error = BAD_ORDERS[case]
    for user in ("alice", CREATOR):
        await buy(ledger, user, "coins_350")
    await ledger.spend(gift_order(catalog, "alice", "before", "rose"), live=True)  # a combo
    before = await snapshot(redis, keys.prefix)
    with pytest.raises(error) as caught:
        await ledger.spend(make(catalog), live=True)
    assert type(caught.value) is error
    assert caught.value.message
    assert await snapshot(redis, keys.prefix) == before


async def test_the_edges_that_are_valid_are_accepted(
    ledger: Ledger, redis: Redis, keys: Keys, catalog: Catalog
) -> None:
    sender = "s" * 64
    await buy(ledger, sender, "coins_3500")
    ok = [
        gift_order(catalog, sender, "m" * 64, "rose", 1000),
        gift_order(catalog, sender, "A-z0._~@+/=!#$%&*^|9", "rose"),
        highlight_order(catalog, sender, "h1", "tier1", "x" * 80),
        highlight_order(catalog, sender, "h2", "tier1", "line one\n\tline two"),
        badge_order(catalog, sender, "b1", "supporter"),
    ]
    balances = [(await ledger.spend(o, live=True)).balance for o in ok]
    assert balances == [2500, 2499, 2489, 2479, 2379]
    spends = of_type(await outbox_entries(redis, keys), "spend")
    assert [e["coins"] for e in spends] == ["1000", "1", "10", "10", "100"]
    assert spends[2]["text"] == "x" * 80
    assert (spends[4]["kind"], spends[4]["creator"], spends[4]["stream"]) == ("badge", "", "")


@pytest.mark.parametrize(
    "priced",
    [
        Priced("gift", "rose", "Rose", 1, 1, 0),
        Priced("gift", "rose", "Rose", 1, -100, -100),
        Priced("gift", "rose", "Rose", -1, 100, -100),
        Priced("gift", "rose", "Rose", 1, 1, 1.5),  # type: ignore[arg-type]
        Priced("gift", "rose", "Rose", 1, 1, True),
        Priced("gift", "rose", "Rose", 1, 1, 2**63),
        Priced("gift", "rose", "Rose", 1, 3, 2),  # total is not unit × count
    ],
)
async def test_a_hand_made_price_that_is_not_a_positive_total_is_refused(
    ledger: Ledger, redis: Redis, keys: Keys, priced: Priced
) -> None:
    # Defence in depth: the hub only spends what price_* returned, but the
    # ledger never lets a spend mint coins or leave an outbox entry behind.
    await buy(ledger, "alice")
    before = await snapshot(redis, keys.prefix)
    with pytest.raises(BadRequest):
        await ledger.spend(SpendOrder("alice", "A", "m1", priced, STREAM, CREATOR), live=True)
    assert await snapshot(redis, keys.prefix) == before


@pytest.mark.parametrize("coins", [0, -5, 1.5, True, "10", 2**63])
async def test_a_credit_of_a_non_positive_or_non_integer_amount_is_refused(
    ledger: Ledger, redis: Redis, keys: Keys, coins: object
) -> None:
    await ledger.credit_creator(spend_event="e-1", creator="cre", coins=10, stream="s", sender="v")
    before = await snapshot(redis, keys.prefix)
    with pytest.raises(BadRequest):
        await ledger.credit_creator(
            spend_event="e-2", creator="cre", coins=coins, stream="s", sender="v"
        )
    assert await snapshot(redis, keys.prefix) == before
