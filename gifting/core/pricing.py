"""Pricing of spends against the catalog: pure checks, integer coins.

Each ``price_*`` function validates its inputs (unknown ids, counts out of
range, comment length) and returns a :class:`Priced` spend, or raises the
typed error the client will see. Nothing here touches a store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gifting.core.catalog import Catalog
from gifting.core.errors import BadRequest, UnknownItem
from gifting.core.money import MAX_SPEND_COINS

SpendKind = Literal["gift", "effect", "highlight", "badge", "box"]
MAX_COMMENT_LENGTH = 500


@dataclass(frozen=True, slots=True)
class Priced:
    """A validated spend: what is bought, how many, and its total in coins."""

    kind: SpendKind
    item: str
    name: str
    unit_coins: int
    count: int
    coins: int
    streakable: bool = False
    tier: int = 0


def check_count(value: object, max_count: int) -> int:
    """Return ``value`` if it is an integer count in 1..``max_count``, else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest("count must be an integer")
    if value < 1:
        raise BadRequest("count must be at least 1")
    if value > max_count:
        raise BadRequest(f"count must be at most {max_count}")
    return value


def _total(unit: int, count: int) -> int:
    coins = unit * count
    if coins > MAX_SPEND_COINS:
        raise BadRequest("the total of this spend is too large")
    return coins


def price_gift(catalog: Catalog, gift_id: object, count: object = 1) -> Priced:
    """Price ``count`` of gift ``gift_id``."""
    if not isinstance(gift_id, str):
        raise BadRequest("gift must be a string")
    gift = catalog.gifts.get(gift_id)
    if gift is None:
        raise UnknownItem(f"unknown gift {gift_id[:64]!r}")
    n = check_count(count, catalog.max_count)
    return Priced(
        "gift", gift.id, gift.name, gift.coins, n, _total(gift.coins, n), gift.streakable, gift.tier
    )


def price_effect(catalog: Catalog, effect_id: object) -> Priced:
    """Price one live-stream effect."""
    if not isinstance(effect_id, str):
        raise BadRequest("effect must be a string")
    effect = catalog.effects.get(effect_id)
    if effect is None:
        raise UnknownItem(f"unknown effect {effect_id[:64]!r}")
    return Priced("effect", effect.id, effect.name, effect.coins, 1, effect.coins)


def check_comment(text: object) -> str:
    """Return the comment text if it is a non-empty string of a sane length."""
    if not isinstance(text, str):
        raise BadRequest("text must be a string")
    if not text.strip():
        raise BadRequest("text must not be empty")
    if len(text) > MAX_COMMENT_LENGTH:
        raise BadRequest(f"text is longer than {MAX_COMMENT_LENGTH} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in text):
        raise BadRequest("text must not contain control characters")
    return text


def price_highlight(catalog: Catalog, tier_id: object, text: object) -> Priced:
    """Price a highlighted comment of tier ``tier_id`` (the text must fit the tier)."""
    if not isinstance(tier_id, str):
        raise BadRequest("highlight must be a string")
    tier = catalog.highlights.get(tier_id)
    if tier is None:
        raise UnknownItem(f"unknown highlight tier {tier_id[:64]!r}")
    body = check_comment(text)
    if len(body) > tier.max_length:
        raise BadRequest(f"a {tier.id} highlight holds at most {tier.max_length} characters")
    return Priced("highlight", tier.id, tier.id, tier.coins, 1, tier.coins)


def price_badge(catalog: Catalog, badge_id: object) -> Priced:
    """Price one profile badge."""
    if not isinstance(badge_id, str):
        raise BadRequest("badge must be a string")
    badge = catalog.badges.get(badge_id)
    if badge is None:
        raise UnknownItem(f"unknown badge {badge_id[:64]!r}")
    return Priced("badge", badge.id, badge.name, badge.coins, 1, badge.coins)
