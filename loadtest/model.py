"""The model of a viewer's wallet that every reply is held against.

The server debits one viewer connection's spends in the order it reads them
(they join the ledger batches in order, and their acks follow in that order),
and each viewer has one connection, so the generator can predict every
outcome exactly: a new id debits its cost if the balance covers it (the ack
carries the balance after the debit) and fails with ``insufficient_funds``
otherwise; a known id returns its first outcome and debits nothing; a bad
frame gets ``bad_request`` / ``unknown_item`` and changes nothing.
``rate_limited`` means "not taken, send it again"; ``unavailable`` means "the
outcome is unknown, send the same id again": until every such id has its
final answer (and one ack after), the model follows the balances the server
reports instead of predicting them. The end check (Redis balance = funded -
the coins of the acked ids) holds either way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from loadtest.config import BAD_FRAME_CODES

__all__ = ["RETRY_CODES", "Verdict", "WalletModel"]

#: Error codes that mean "send the same id again later".
RETRY_CODES: Final = frozenset({"unavailable", "rate_limited"})
#: At most this many mismatch descriptions are kept per viewer.
_KEEP: Final = 5


class Verdict(enum.IntEnum):
    """What a reply meant, once checked against the model."""

    NEW_ACK = 0  # a first ack: coins debited
    REPLAY = 1  # a known id answered with its first outcome
    REFUSED = 2  # an expected error (insufficient funds, a bad frame)
    RETRY = 3  # unavailable / rate limited: send the same id again
    MISMATCH = 4  # the server said something the model did not expect


@dataclass(slots=True)
class WalletModel:
    """One viewer's expected balance and the first outcome of each id it used."""

    balance: int
    funded: int = 0
    debited: int = 0
    acked: int = 0
    results: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    mismatches: int = 0
    examples: list[str] = field(default_factory=list)
    #: ids answered ``unavailable`` whose final answer is still to come
    unsure: set[str] = field(default_factory=set)
    #: follow the server's balances until the next ack (after an unknown outcome)
    lenient: bool = False

    def _mismatch(self, what: str) -> Verdict:
        self.mismatches += 1
        if len(self.examples) < _KEEP:
            self.examples.append(what)
        return Verdict.MISMATCH

    def check_bad(self, op: str, code: str | None, name: str) -> Verdict:
        """A bad frame: it must get an error with a validation code."""
        if op == "error" and code in BAD_FRAME_CODES:
            return Verdict.REFUSED
        return self._mismatch(f"bad frame {name!r} got {op} {code or ''}".strip())

    def _follow(
        self, cid: str, cost: int, op: str, event: str | None, balance: int | None, code: str | None
    ) -> Verdict:
        """After an unknown outcome: take the server's word, still checking replays.

        The ack of an id that was unsure may be its original one, with the
        balance of back then: only the ack of another id resyncs the balance.
        """
        was_unsure = cid in self.unsure
        self.unsure.discard(cid)
        first = self.results.get(cid)
        verdict = Verdict.REPLAY if first is not None else Verdict.REFUSED
        if op == "ack" and event is not None and balance is not None:
            if first is None:
                self.results[cid] = ("ack", event, balance)
                self.debited += cost
                self.acked += 1
                verdict = Verdict.NEW_ACK
            self.balance = balance
            self.lenient = was_unsure or bool(self.unsure)
        elif first is None:
            self.results[cid] = ("error", code or "", 0)
        if first is not None and first[0] != op:
            return self._mismatch(f"retry of {cid} got {op}, first outcome {first}")
        return verdict

    def check_spend(
        self, cid: str, cost: int, op: str, event: str | None, balance: int | None, code: str | None
    ) -> Verdict:
        """A spend of ``cost`` coins with client id ``cid`` got this reply."""
        if op == "error" and code in RETRY_CODES:
            if code == "unavailable":
                self.unsure.add(cid)
                self.lenient = True
            return Verdict.RETRY
        if self.lenient:
            return self._follow(cid, cost, op, event, balance, code)
        first = self.results.get(cid)
        if first is not None:
            got = ("ack", event or "", balance or 0) if op == "ack" else ("error", code or "", 0)
            if got != first:
                return self._mismatch(f"retry of {cid} got {got}, first outcome {first}")
            return Verdict.REPLAY
        if cost <= self.balance:
            if op != "ack" or event is None or balance is None:
                self.results[cid] = ("error", code or "", 0)
                return self._mismatch(
                    f"{cid} ({cost} coins, balance {self.balance}) got {op} {code}"
                )
            self.results[cid] = ("ack", event, balance)
            expected = self.balance - cost
            self.balance = balance  # follow the server, so one mismatch does not cascade
            self.debited += cost
            self.acked += 1
            if balance != expected:
                return self._mismatch(f"{cid}: ack balance {balance}, expected {expected}")
            return Verdict.NEW_ACK
        if op == "error" and code == "insufficient_funds":
            self.results[cid] = ("error", code, 0)
            return Verdict.REFUSED
        if op == "ack" and event is not None and balance is not None:
            was = self.balance
            self.results[cid] = ("ack", event, balance)
            self.balance = balance
            self.debited += cost
            self.acked += 1
            return self._mismatch(f"{cid} ({cost} coins) acked with only {was} coins")
        self.results[cid] = ("error", code or "", 0)
        return self._mismatch(f"{cid}: expected insufficient_funds, got {op} {code}")
