"""The hub of one process: it builds the parts of the live side and wires them together.

Each part has one job: :class:`RoomRegistry` (the local rooms, subscribed
through the :class:`RoomBroker`), :class:`SpendPipeline` (the batched gift
path), :class:`SenderLimits` (per-sender rate limits), :class:`ConnectionCaps`
(connections per user, overlay key and address), :class:`RoomComments`
(free comments), the :class:`DeadlineRunner` (deadlines kept in Redis:
``streak_end`` and the rest, run by whichever process is alive),
:class:`LeaderboardTicker` (standings once a second) and
:class:`PresenceBeat` (this hub's viewers per stream, for discovery). The
hub starts and stops them in order and routes each settled spend to the
ticker. Built once by the lifespan (gifting/hub/extension.py) and shared by
every WebSocket.
"""

from __future__ import annotations

import logging
from typing import Final

from redis.asyncio import Redis

from gifting.clock import now_ms
from gifting.config import Settings
from gifting.core.admission import ConnectionCaps
from gifting.core.catalog import Catalog
from gifting.core.disconnect import SHUTDOWN
from gifting.core.events import stream_ended_event
from gifting.core.ratelimit import SenderLimits
from gifting.hub import metrics
from gifting.hub.broker import Broker, RoomBroker
from gifting.hub.comments import RoomComments
from gifting.hub.leaderboard import LeaderboardTicker
from gifting.hub.presence import PresenceBeat
from gifting.hub.registry import RoomRegistry
from gifting.hub.sharded_broker import ShardedRoomBroker
from gifting.hub.spends import KeptLookup, Settled, SpendPipeline
from gifting.hub.weekly_board import WeeklyBoardTicker
from gifting.store.boxes import Boxes
from gifting.store.cluster import is_cluster
from gifting.store.keys import Keys
from gifting.store.ledger import Ledger
from gifting.store.presence import Presence
from gifting.store.rooms import RoomLog
from gifting.store.streams import Streams
from gifting.store.wiring import build_deadline_runner

log = logging.getLogger(__name__)
#: How long an end waits for the room to show the gifts debited before it.
END_SHOWN_TIMEOUT_S: Final = 5.0


class Hub:
    """The live side of one process: rooms, the gift path, limits, comments, streaks, standings."""

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        keys: Keys,
        catalog: Catalog,
        ledger: Ledger,
        streams: Streams,
        rooms: RoomLog,
        kept: KeptLookup | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.streams = streams
        self.roomlog = rooms
        self.broker: Broker = (
            ShardedRoomBroker(redis)
            if is_cluster(redis)
            else RoomBroker(redis, f"{keys.prefix}:hub:control")
        )
        self.rooms = RoomRegistry(self.broker, keys, rooms, settings.viewer_batch_ms / 1000)
        #: Treasure boxes: claims, and the open and close deadlines (gifting/store/boxes.py).
        self.boxes = Boxes(redis, keys, rooms)
        self.pipeline = SpendPipeline(
            ledger, streams, rooms, on_settled=self._on_settled, kept=kept
        )
        self.limits = SenderLimits(settings.rate_per_s, settings.rate_burst, now_ms)
        self.caps = ConnectionCaps({
            "user": settings.max_connections_per_user,
            "overlay": settings.max_connections_per_overlay,
            "address": settings.max_connections_per_address,
        })  # fmt: skip
        for scope, cap in self.caps.caps.items():
            metrics.CONNECTION_LIMIT.labels(scope).set(cap)
        metrics.RATE_LIMIT.labels("rate").set(settings.rate_per_s)
        metrics.RATE_LIMIT.labels("burst").set(settings.rate_burst)
        self.comments = RoomComments(streams, rooms, ledger.sender_marks)
        self.deadlines = build_deadline_runner(settings, redis, catalog, rooms, ledger)
        self.leaderboard = LeaderboardTicker(streams, rooms)
        self.weekly_board = WeeklyBoardTicker(streams, rooms, settings.weekly_board_ms / 1000)
        self.presence = PresenceBeat(
            Presence(redis, keys), self.rooms.viewer_counts, settings.presence_ms / 1000
        )

    async def start(self) -> None:
        """Start the broker, the gift path and the leaderboard ticker."""
        await self.broker.start()
        self.pipeline.start()
        self.leaderboard.start()
        self.weekly_board.start()
        self.presence.start()
        self.deadlines.start()

    async def stop(self) -> None:
        """Drain the gift path, close every connection (1001: reconnect elsewhere), stop.

        Spends already received are debited, acked and settled before the
        connections close (bounded: see :meth:`SpendPipeline.stop`), so a
        rolling restart leaves nothing for the persister to repair.
        """
        await self.pipeline.stop()
        self.rooms.close_all(SHUTDOWN)
        await self.presence.stop()
        await self.leaderboard.stop()
        await self.weekly_board.stop()
        await self.deadlines.stop()
        await self.broker.stop()
        await self.boxes.aclose()

    def _on_settled(self, s: Settled) -> None:
        self.leaderboard.mark(s.order.stream)
        self.weekly_board.mark(s.order.stream)

    async def emit_standings(self, stream: str) -> None:
        """Emit the stream's leaderboard and its goals (the goals changed)."""
        await self.leaderboard.emit(stream, goals_changed=True)

    async def end_stream(self, stream: str) -> None:
        """Emit ``stream_ended`` after every gift debited to the ended stream was shown.

        Called once the stream's gates are closed (``Streams.end``): the
        debited count is final, so the room shows every gift before
        ``stream_ended``. Every hub closes the room's connections after it.
        """
        if not await self.streams.wait_shown(stream, END_SHOWN_TIMEOUT_S):
            log.warning(
                "stream %s: gifts debited before its end are not all shown after %.0fs; "
                "stream_ended goes first, they follow when the persister repairs them",
                stream, END_SHOWN_TIMEOUT_S,
            )  # fmt: skip
        await self.roomlog.emit(stream, stream_ended_event(stream, f"x{stream}", now_ms()))
