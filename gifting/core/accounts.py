"""The chart of accounts of the double-entry ledger. Pure.

Every ledger event is persisted as postings to these accounts, summing to
zero per currency (:mod:`gifting.persister.postings` makes them; the
history reads and the audit read them back).

Accounts (``user:<id>:coins`` etc.; ids never contain ``:``)::

    currency  account                    what it holds
    coins     user:<id>:coins            a user's spendable coins (may go negative on refund)
    coins     external:payments          minus the coins sold for real money, net of refunds
    coins     creator:<id>:received      coins of gifts, effects and highlights received
    coins     platform:revenue           coins spent on profile badges
    coins     boxes:escrow               coins in treasure boxes not settled yet
    diamonds  user:<id>:diamonds         a creator's spendable diamonds
    diamonds  user:<id>:held             diamonds held for pending cash-outs
    diamonds  user:<id>:paid             diamonds paid out
    diamonds  platform:diamond_issuance  minus every diamond ever credited

    purchase        user:<u>:coins +c          external:payments -c
    refund          user:<u>:coins -c          external:payments +c
    spend           user:<u>:coins -c          creator:<c>:received +c  (badges: platform:revenue;
                                                                      boxes: boxes:escrow)
    box_claim       user:<u>:coins +s          boxes:escrow -s
    box_return      user:<d>:coins +r          boxes:escrow -r   (none when r = 0)
    credit          user:<c>:diamonds +d       platform:diamond_issuance -d  (none when d = 0)
    cashout_hold    user:<u>:diamonds -d       user:<u>:held +d
    cashout_paid    user:<u>:held -d           user:<u>:paid +d
    cashout_failed  user:<u>:held -d           user:<u>:diamonds +d
    cashout_cancelled  user:<u>:held -d        user:<u>:diamonds +d
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BOX_ESCROW",
    "DIAMOND_ISSUANCE",
    "EXTERNAL_PAYMENTS",
    "PLATFORM_REVENUE",
    "creator_received",
    "user_coins",
    "user_diamonds",
    "user_held",
    "user_paid",
]

EXTERNAL_PAYMENTS: Final = "external:payments"
PLATFORM_REVENUE: Final = "platform:revenue"
DIAMOND_ISSUANCE: Final = "platform:diamond_issuance"
#: Coins dropped in treasure boxes and neither claimed nor returned yet (gifting.core.boxes).
BOX_ESCROW: Final = "boxes:escrow"


def user_coins(user: str) -> str:
    """The coin account of ``user``."""
    return f"user:{user}:coins"


def user_diamonds(user: str) -> str:
    """The spendable diamond account of ``user``."""
    return f"user:{user}:diamonds"


def user_held(user: str) -> str:
    """The diamonds of ``user`` held for pending cash-outs."""
    return f"user:{user}:held"


def user_paid(user: str) -> str:
    """The diamonds of ``user`` paid out."""
    return f"user:{user}:paid"


def creator_received(creator: str) -> str:
    """The coins received by ``creator`` (gifts, effects, highlights in their streams)."""
    return f"creator:{creator}:received"
