"""Every Redis key name and hash tag of gifting, in one place.

Money keys are grouped into wallet shards by a hash tag: all keys of one user
(wallet, spend results, combo) and the outbox stream that user's spends append
to share the tag ``{wNN}``, so each money script touches one hash slot and runs
unchanged on Redis Cluster. The number of shards is a deployment setting
(``GIFTING_WALLET_SHARDS``, :attr:`Keys.shards`, default ``SHARDS`` = 16, the
layout of every deployment before it was a setting). It is part of the data
layout: changing it on a live deployment moves users to other shards, so it is
fixed at deploy time (docs/operations.md says how to choose it).

Streams (rooms) have their own tag ``{r:<stream>}``, plus a small gate in
every wallet shard (``stream_gate``) that spend.lua checks in its own slot.
Indexes that map an external id to a user (a provider's purchase id, a
cash-out id) live in their own slot and are written before the money script
runs (see purchases.py).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

SHARDS = 16
#: The bounds of the shard count: at most one shard per hash slot.
MAX_SHARDS = 16384


def shard_of(user: str, shards: int = SHARDS) -> int:
    """Return the wallet shard of ``user`` among ``shards`` (stable across processes)."""
    return zlib.crc32(user.encode()) % shards


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder bound to one deployment prefix (tests use a unique prefix each)."""

    prefix: str = "g"
    #: How many wallet shards (outboxes) the deployment has; see the module docstring.
    shards: int = SHARDS

    def __post_init__(self) -> None:
        if not 1 <= self.shards <= MAX_SHARDS:
            raise ValueError(f"the wallet shard count must be 1..{MAX_SHARDS}")

    def shard_of(self, user: str) -> int:
        """The wallet shard of ``user`` in this deployment."""
        return shard_of(user, self.shards)

    # -- wallet shard ------------------------------------------------------
    def tag(self, shard: int) -> str:
        """The hash tag of wallet shard ``shard``."""
        return f"{{w{shard:02d}}}"

    def wallet(self, user: str) -> str:
        """Hash: coins, diamonds, received, earned, held, paid, budget, month, spent, pos.

        ``pos`` is the outbox id of the last event that changed the money
        fields, written by the same script (the audit compares the wallet with
        the ledger at that position).
        """
        return f"{self.prefix}:{self.tag(self.shard_of(user))}:wallet:{user}"

    def badges_owned(self, user: str) -> str:
        """Set: the badge ids the user bought (the one shown is the wallet's ``badge``)."""
        return f"{self.prefix}:{self.tag(self.shard_of(user))}:badges:{user}"

    def spend_result(self, user: str, client_id: str) -> str:
        """Hash: the stored result of one spend, keyed by the sender's message id."""
        return f"{self.prefix}:{self.tag(self.shard_of(user))}:spend:{user}:{client_id}"

    def combo(self, user: str, stream: str) -> str:
        """Hash: the sender's current gift streak in one stream (gift, count, last)."""
        return f"{self.prefix}:{self.tag(self.shard_of(user))}:combo:{user}:{stream}"

    def purchase(self, user: str, purchase_id: str) -> str:
        """Hash: one provider purchase credited to ``user`` (and whether it was refunded)."""
        return f"{self.prefix}:{self.tag(self.shard_of(user))}:purchase:{purchase_id}"

    def credit_done(self, creator: str, event: str) -> str:
        """String: marks that the creator was credited for spend ``event``."""
        return f"{self.prefix}:{self.tag(self.shard_of(creator))}:credited:{event}"

    def cashout(self, shard: int, cashout_id: str) -> str:
        """Hash: one cash-out (user, diamonds, amount, status)."""
        return f"{self.prefix}:{self.tag(shard)}:cashout:{cashout_id}"

    def cashout_request(self, user: str, request_id: str) -> str:
        """String ``<cash-out id>:<diamonds>``: what the user's idempotency id created."""
        return f"{self.prefix}:{self.tag(self.shard_of(user))}:cashreq:{user}:{request_id}"

    def cashouts_of(self, user: str) -> str:
        """Sorted set: the user's cash-out ids by creation time."""
        return f"{self.prefix}:{self.tag(self.shard_of(user))}:cashouts:{user}"

    def stream_gate(self, shard: int, stream: str) -> str:
        """Hash: a stream's gate in wallet shard ``shard`` (``ended``, ``debits``).

        spend.lua refuses a spend to a stream whose gate in the sender's shard
        is closed (``ended``) and counts the ones it debits (``debits``); ending
        a stream closes its gate in every shard, so the end and each spend
        meet in the spend's own slot.
        """
        return f"{self.prefix}:{self.tag(shard)}:gate:{stream}"

    def stream_gates(self, stream: str) -> list[str]:
        """The stream's gate in every wallet shard."""
        return [self.stream_gate(s, stream) for s in range(self.shards)]

    def block_by_creator(self, user: str, creator: str) -> str:
        """Hash (by, at): ``user`` is blocked in every stream of ``creator``.

        In the blocked user's own wallet shard, so spend.lua reads it in the
        debit's slot: a block and a spend meet atomically (store/moderation.py).
        """
        return f"{self.prefix}:{self.tag(self.shard_of(user))}:block:c:{creator}:{user}"

    def block_in_stream(self, user: str, stream: str) -> str:
        """Hash (by, at): ``user`` is blocked in ``stream``; the user's shard, as above."""
        return f"{self.prefix}:{self.tag(self.shard_of(user))}:block:s:{stream}:{user}"

    def shard_due(self, shard: int) -> str:
        """Sorted set: deadlines kept in wallet shard ``shard`` (a streak's end), by due ms.

        spend.lua schedules a streak's end here, in the sender's slot, with the
        debit; every process's :class:`~gifting.store.deadlines.DeadlineRunner`
        takes what is due (see :meth:`due`).
        """
        return f"{self.prefix}:{self.tag(shard)}:due"

    def streak_over(self, user: str, event: str) -> str:
        """Hash: a streak another gift ended (spend.lua keeps its last state here until shown).

        ``event`` is the streak's last spend; the sender's wallet shard.
        """
        return f"{self.prefix}:{self.tag(self.shard_of(user))}:streak-over:{event}"

    def outbox(self, shard: int) -> str:
        """Stream: settled ledger events of shard ``shard``, read by the persister."""
        return f"{self.prefix}:{self.tag(shard)}:outbox"

    def outboxes(self) -> list[str]:
        """Every outbox stream, one per shard."""
        return [self.outbox(s) for s in range(self.shards)]

    def persister_lease(self, shard: int) -> str:
        """String: the ``gifting persist`` process that owns shard ``shard``'s outbox now."""
        return f"{self.prefix}:{self.tag(shard)}:lease"

    def persisters(self) -> str:
        """Sorted set: the live ``gifting persist`` processes by the expiry of their heartbeat."""
        return f"{self.prefix}:persisters"

    def dead_letters(self) -> str:
        """Stream: outbox entries the persister could not use, with the reason."""
        return f"{self.prefix}:deadletter"

    def due(self) -> str:
        """Sorted set: the deadlines not tied to a wallet shard (boxes, hype), by due ms."""
        return f"{self.prefix}:due"

    def due_sets(self) -> list[str]:
        """Every deadline set: :meth:`due`, then each wallet shard's :meth:`shard_due`."""
        return [self.due(), *(self.shard_due(s) for s in range(self.shards))]

    # -- external id indexes (own slot each) ---------------------------------
    def purchase_owner(self, purchase_id: str) -> str:
        """String: the user a provider purchase id was credited to."""
        return f"{self.prefix}:purchase-owner:{{{purchase_id}}}"

    # -- streams (rooms) -----------------------------------------------------
    def stream(self, stream: str) -> str:
        """Hash: creator, title, live, overlay key, goal, created/ended times."""
        return f"{self.prefix}:{{r:{stream}}}:stream"

    def stream_viewers(self, stream: str) -> str:
        """Hash: hub id -> ``"<count>:<expires ms>"``, each hub's viewers of the stream.

        Written by every hub on its presence beat (gifting/hub/presence.py); a
        report past its expiry no longer counts (gifting/core/discovery.py).
        """
        return f"{self.prefix}:{{r:{stream}}}:viewers"

    def stream_totals(self, stream: str) -> str:
        """Hash: coins and gifts received by the stream."""
        return f"{self.prefix}:{{r:{stream}}}:totals"

    def stream_top(self, stream: str) -> str:
        """Sorted set: coins by sender (the top-gifter leaderboard)."""
        return f"{self.prefix}:{{r:{stream}}}:top"

    def stream_names(self, stream: str) -> str:
        """Hash: display name by sender id, for the leaderboard."""
        return f"{self.prefix}:{{r:{stream}}}:names"

    def room_history(self, stream: str) -> str:
        """Stream: the capped recent room events, for overlay recovery (``since=``)."""
        return f"{self.prefix}:{{r:{stream}}}:history"

    def room_seq(self, stream: str) -> str:
        """Counter: the last room ``seq`` assigned."""
        return f"{self.prefix}:{{r:{stream}}}:seq"

    def room_emitted(self, stream: str, event: str) -> str:
        """String: marks that ledger event ``event`` was emitted to the room."""
        return f"{self.prefix}:{{r:{stream}}}:emitted:{event}"

    def room_channel(self, stream: str) -> str:
        """Pub/sub channel carrying the room's events between hubs.

        Tagged with the room's ``{r:<stream>}`` so that on a cluster it hashes
        to the room's slot: emit.lua ``SPUBLISH``es it from that slot and the
        hubs ``SSUBSCRIBE`` on the node serving it.
        """
        return f"{self.prefix}:{{r:{stream}}}:room"

    def stream_blocks(self, stream: str) -> str:
        """Hash: user -> JSON of a block in this stream only (the listing; see block_in_stream)."""
        return f"{self.prefix}:{{r:{stream}}}:blocks"

    def creator_blocks(self, creator: str) -> str:
        """Hash: user -> JSON of a block in every stream of the creator (the listing)."""
        return f"{self.prefix}:{{c:{creator}}}:blocks"

    def moderators(self, creator: str) -> str:
        """Hash: user -> JSON (by, at) of the moderators the creator named."""
        return f"{self.prefix}:{{c:{creator}}}:moderators"

    def live_streams(self) -> str:
        """Sorted set: every live stream by start time (added on create, removed on end)."""
        return f"{self.prefix}:live"

    def discovery_ranking(self, snapshot: str) -> str:
        """List: one listing's ranking of the live streams (its own slot), paged by cursor."""
        return f"{self.prefix}:discover:{{{snapshot}}}"

    def streams_of(self, creator: str) -> str:
        """Sorted set: a creator's streams by start time."""
        return f"{self.prefix}:{{c:{creator}}}:streams"

    # -- videos (gifts on videos) ---------------------------------------------
    def video(self, video: str) -> str:
        """Hash: a published video's creator, creator name, title, created time."""
        return f"{self.prefix}:{{v:{video}}}:video"

    def videos_of(self, creator: str) -> str:
        """Sorted set: a creator's videos by creation time."""
        return f"{self.prefix}:{{c:{creator}}}:videos"

    def video_totals(self, video: str) -> str:
        """Hash: coins, gifts and spends a video received (emit.lua's totals)."""
        return f"{self.prefix}:{{v:{video}}}:totals"

    def video_top(self, video: str) -> str:
        """Sorted set: coins by sender on the video (its top gifters)."""
        return f"{self.prefix}:{{v:{video}}}:top"

    def video_names(self, video: str) -> str:
        """Hash: display name by sender id, for the video's top gifters."""
        return f"{self.prefix}:{{v:{video}}}:names"

    def video_history(self, video: str) -> str:
        """Stream: the video's capped recent ``video_gift`` events (the webhook feed reads it)."""
        return f"{self.prefix}:{{v:{video}}}:history"

    def video_seq(self, video: str) -> str:
        """Counter: the last ``seq`` of the video's events."""
        return f"{self.prefix}:{{v:{video}}}:seq"

    def video_emitted(self, video: str, event: str) -> str:
        """String: marks that spend ``event`` was counted on the video (emit.lua's marker)."""
        return f"{self.prefix}:{{v:{video}}}:emitted:{event}"

    def video_channel(self, video: str) -> str:
        """Pub/sub channel emit.lua publishes the video's events on (in its slot)."""
        return f"{self.prefix}:{{v:{video}}}:events"

    # -- leaderboards (in the credited user's wallet shard; see store/boards.py) -------
    def board_supporters(self, creator: str, label: str) -> str:
        """Sorted set: coins credited to ``creator`` by sender in period ``label``.

        ``label`` is an ISO week (``2026-W49``) or a month (``2026-12``). In the
        creator's wallet shard, so credit.lua updates it in the credit's slot.
        """
        return f"{self.prefix}:{self.tag(self.shard_of(creator))}:board:sup:{creator}:{label}"

    def board_names(self, creator: str) -> str:
        """Hash: display name by sender id, for the creator's supporter boards."""
        return f"{self.prefix}:{self.tag(self.shard_of(creator))}:board:names:{creator}"

    def board_creators(self, shard: int, label: str) -> str:
        """Sorted set: coins credited in period ``label`` by creator, for the creators of ``shard``.

        The platform's top creators are the merge of every shard's (each
        creator lives in exactly one shard, so the merge of the top N is exact).
        """
        return f"{self.prefix}:{self.tag(shard)}:board:creators:{label}"

    # -- treasure boxes (gifting/store/boxes.py) -------------------------------------
    def box(self, stream: str, box: str) -> str:
        """Hash: one treasure box's state in its room's slot (box_create.lua writes it).

        dropper, name, coins, winners, opens_at, closes_at, drop_event, state
        (``open``, ``sealed``: no more claims, ``settled``), claims, claimed.
        """
        return f"{self.prefix}:{{r:{stream}}}:box:{box}"

    def box_claims(self, stream: str, box: str) -> str:
        """Hash: claimer -> JSON ``[order, share, client id, name]`` (box_claim.lua)."""
        return f"{self.prefix}:{{r:{stream}}}:boxclaims:{box}"

    def box_credited(self, user: str, box: str) -> str:
        """String: the claimer's balance after its share of ``box`` was credited (once)."""
        return f"{self.prefix}:{self.tag(self.shard_of(user))}:boxcredit:{box}:{user}"

    def box_returned(self, dropper: str, box: str) -> str:
        """String: the dropper's balance after what nobody claimed of ``box`` came back."""
        return f"{self.prefix}:{self.tag(self.shard_of(dropper))}:boxreturn:{box}"

    def stream_goals(self, stream: str) -> str:
        """Hash: the room's goals and their progress (layout: gifting/store/goals.py)."""
        return f"{self.prefix}:{{r:{stream}}}:goals"

    def stream_hype(self, stream: str) -> str:
        """Hash: the room's hype and its window's aggregates (layout: gifting/store/hype.py)."""
        return f"{self.prefix}:{{r:{stream}}}:hype"

    def stream_hype_window(self, stream: str) -> str:
        """Sorted set: the room's spends of the hype window, by ms (gifting/store/hype.py)."""
        return f"{self.prefix}:{{r:{stream}}}:hype-window"
