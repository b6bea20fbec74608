"""Who a spend's coins go to: the stream's creator, or the platform. Pure.

A gift, effect or highlighted comment in a stream goes to its creator. A
creator may buy an effect or a highlighted comment in their own stream (it
still shows in the room), but those coins are kept by the platform, like a
badge's: crediting them back would let a creator turn coins into diamonds.
A treasure box has no payee either: its coins go to the boxes' escrow and
from there to the viewers who claim them (:mod:`gifting.core.boxes`).
A gift to oneself is refused (``forbidden``). A gift may name another
receiver, a guest of the stream (:func:`receiver`); it is then the guest who
is credited, and a guest's gift to themselves is refused the same way. On
the outbox entry a spend kept by the platform has an empty ``creator`` (a
badge has no stream either; a self-purchase keeps its stream), so the ledger
posts it to ``platform:revenue``, no credit is ever made for it, and the
stream's ``coins received`` does not count it.
"""

from __future__ import annotations

from gifting.core.errors import Forbidden
from gifting.core.pricing import SpendKind


def payee(kind: str, sender: str, creator: str) -> str:
    """The creator credited for a spend of ``kind`` by ``sender``; ``""``: the platform keeps it.

    Raises :class:`Forbidden` for a gift to the sender's own stream.
    """
    if kind == "box":
        return ""  # a treasure box: coins move viewer to viewers (gifting.core.boxes)
    if not creator or creator != sender:
        return creator
    if kind == "gift":
        raise Forbidden("you cannot send gifts to yourself or to your own stream")
    return ""


def receiver(kind: SpendKind, host: str, to: str) -> str:
    """Who a spend of ``kind`` in ``host``'s stream is meant for: a gift's ``to``, else the host.

    ``to`` empty or equal to the host means the host; only a gift names
    another receiver (a guest: the caller checks the stream's guest list).
    Pass the result to :func:`payee`, which refuses a gift to its sender.
    """
    return to if kind == "gift" and to and host else host
