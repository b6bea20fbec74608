"""The kept result of a spend's id, wherever it is kept. Pure: no I/O.

A spend's id is ``(sender, client id)``, and its result is kept in two
places, one after the other (docs/architecture.md, "Durable ids"):

* **Redis**, by spend.lua, in the sender's slot: every result, at once. A
  successful spend's record has no expiry until the persister has made it
  durable; then it is kept a short *recent window* (retries are nearly always
  within seconds, and answered there in the same script that would debit).
* **PostgreSQL** (``spend_ids``), by the persister, in the transaction that
  writes the spend's ledger event: the long-term record of every debited id.
  The hub looks a batch's ids up there (one query per batch) and replays
  what it finds without running a script, so a retry after the window
  debits nothing.

Failed spends (insufficient funds, over budget, stream not live) moved no
money and never reach the outbox: their result is kept in Redis only, for
``GIFTING_IDEMPOTENCY_TTL`` (7 days). A retry within that stays failed
(contract §7); a retry after it is a new debit attempt. Keeping failures
durable would need an outbox entry (and a PostgreSQL row) per refusal, so a
storm of refusals would cost the persister as much as a storm of gifts, for
ids whose clients gave up days before.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KeptSpend", "SpendId"]

#: A spend's idempotency key: (sender, client message id).
SpendId = tuple[str, str]


@dataclass(frozen=True, slots=True)
class KeptSpend:
    """The original result of a debited spend id, as PostgreSQL keeps it."""

    event: str
    status: str
    balance: int
    combo: int
    fingerprint: str
