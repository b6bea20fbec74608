"""The catalog: what can be bought and sold, and at what price.

Coin packages (real money → coins), gifts, live-stream effects, highlighted
comments and profile badges (coins → items), the creator share (coins →
diamonds, in basis points), the cash-out value of diamonds and the cash-out
limits all come from one JSON file. The default ships in the package
(``gifting/catalog.json``, public TikTok figures as reported in 2025 guides);
a deployment overrides it with ``GIFTING_CATALOG=/path/to/catalog.json``.
Everything is an integer: coins, diamonds, cents, basis points, milliseconds.

This module is the one place importers name; the work is split by job:

- :mod:`gifting.core.catalog_model` — the frozen values and :class:`Catalog`
  (lookups, the public body, diamonds and cash-out math);
- :mod:`gifting.core.catalog_check` — :func:`parse_catalog`, the strict
  validation of a decoded document, its limits and :class:`CatalogError`;
- :mod:`gifting.core.catalog_load` — :func:`load_catalog`, reading the packaged
  default or a file (the only I/O).
"""

from __future__ import annotations

from gifting.core.catalog_check import (
    MAX_CASHOUT_DIAMONDS,
    MAX_CENTS,
    MAX_COINS,
    MAX_COMMENT_LENGTH,
    MAX_COUNT,
    MAX_DIAMOND_UNIT,
    MAX_DURATION_MS,
    MAX_ENTRIES,
    MAX_NAME_LENGTH,
    CatalogError,
    parse_catalog,
)
from gifting.core.catalog_load import DEFAULT_CATALOG_SOURCE, load_catalog
from gifting.core.catalog_model import (
    Badge,
    Catalog,
    DiamondValue,
    Effect,
    Gift,
    Highlight,
    Package,
    Price,
)

__all__ = [
    "DEFAULT_CATALOG_SOURCE",
    "MAX_CASHOUT_DIAMONDS",
    "MAX_CENTS",
    "MAX_COINS",
    "MAX_COMMENT_LENGTH",
    "MAX_COUNT",
    "MAX_DIAMOND_UNIT",
    "MAX_DURATION_MS",
    "MAX_ENTRIES",
    "MAX_NAME_LENGTH",
    "Badge",
    "Catalog",
    "CatalogError",
    "DiamondValue",
    "Effect",
    "Gift",
    "Highlight",
    "Package",
    "Price",
    "load_catalog",
    "parse_catalog",
]
