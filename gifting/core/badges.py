"""Profile badges on display: which owned badge is shown, and its wire form. Pure.

A user may own several badges; the one shown on their events (``sender.badge``)
is the dearest owned, by catalog coins, a tie going to the badge listed first
in the catalog. ``tier`` ranks a badge among the catalog's by price (1 = the
cheapest; badges of the same price share a tier), so the overlay can style
badges without knowing the catalog.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict

from gifting.core.catalog import Catalog


class BadgeView(TypedDict):
    """The wire form of a badge on an event or in the wallet."""

    id: str
    name: str
    tier: int


def badge_ranking(catalog: Catalog) -> list[str]:
    """The catalog's badge ids, the one to show first: dearest first, ties in catalog order."""
    order = {badge_id: i for i, badge_id in enumerate(catalog.badges)}
    return sorted(catalog.badges, key=lambda b: (-catalog.badges[b].coins, order[b]))


def best_badge(catalog: Catalog, owned: Iterable[str]) -> str | None:
    """The badge to show among ``owned`` (ids no longer in the catalog are ignored)."""
    have = set(owned)
    return next((b for b in badge_ranking(catalog) if b in have), None)


def badge_view(catalog: Catalog, badge_id: str) -> BadgeView | None:
    """``{"id", "name", "tier"}`` of a catalog badge; ``None`` for "" or a retired badge."""
    badge = catalog.badges.get(badge_id) if badge_id else None
    if badge is None:
        return None
    return {"id": badge.id, "name": badge.name, "tier": catalog.badge_tiers[badge.id]}


def owned_views(catalog: Catalog, owned: Iterable[str]) -> list[BadgeView]:
    """The wire forms of the ``owned`` badges still in the catalog, the shown one first."""
    have = set(owned)
    views = (badge_view(catalog, b) for b in badge_ranking(catalog) if b in have)
    return [v for v in views if v is not None]
