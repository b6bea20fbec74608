"""Videos: published videos that take gifts, with their totals and top gifters.

A video's keys share the hash tag ``{v:<video>}``. A gift on a video is a
spend like a live gift (spend.lua in the sender's slot, with the live flag
``v``: no stream gate, the creator's blocks read) and is credited by
credit.lua like one. Its totals, top gifters and capped history of
``video_gift`` events are kept by emit.lua run on the video's keys
(:func:`video_emit_call`): once per spend event, by a marker in the video's
slot that lives until the persister retires the spend, so the API process
that debited it and the persister's repair both may run it and only the
first counts. The history is what the webhook feed reads
(gifting/feed/worker.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis

from gifting.clock import now_ms
from gifting.core.catalog import Catalog
from gifting.core.entries import SpendEntry
from gifting.core.errors import BadRequest, NotFound
from gifting.core.events import video_gift_event
from gifting.core.ids import check_id, new_id
from gifting.store.cluster import is_cluster
from gifting.store.history import HistoryEntry, history_since
from gifting.store.keys import Keys
from gifting.store.scripts import ScriptCall

__all__ = ["MAX_TITLE_LENGTH", "Video", "VideoTotals", "Videos", "video_emit_call"]

MAX_TITLE_LENGTH = 200
_json = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Video:
    """A video as stored: its creator and title."""

    video: str
    creator: str
    creator_name: str
    title: str
    created: int


@dataclass(frozen=True, slots=True)
class VideoTotals:
    """Coins and gifts a video received, and its top gifters."""

    coins: int
    gifts: int
    top: list[dict[str, Any]]


def video_emit_call(
    keys: Keys,
    entry: SpendEntry,
    catalog: Catalog,
    *,
    max_events: int,
    min_id: int,
    publish: str,
    not_after: int | None = None,
) -> ScriptCall:
    """The emit.lua call counting gift ``entry`` on its video, once (pure: builds, never sends).

    The spend's ``video_gift`` event goes to the video's history; its coins
    and gift count to the video's totals and its sender's top entry. The
    marker has no expiry until the persister retires the spend
    (:mod:`gifting.store.retire`); past ``not_after`` (unix ms) a first
    emission is refused ``stale``.
    """
    video = entry.video
    call_keys = [
        keys.video_emitted(video, entry.event),
        keys.video_seq(video),
        keys.video_history(video),
        keys.video_totals(video),
        keys.video_top(video),
        keys.video_names(video),
    ]
    args: list[str | int] = [
        _json.encode(video_gift_event(entry, catalog)).decode(), max_events, min_id, -1,
        keys.video_channel(video), entry.user, entry.name, entry.coins, entry.count,
        f"gift:{entry.item}", "" if not_after is None else not_after, publish, "",
    ]  # fmt: skip
    return ScriptCall("emit", call_keys, args)


def _text(raw: dict[bytes, bytes], field: str, default: str = "") -> str:
    value = raw.get(field.encode())
    return default if value is None else value.decode()


def check_title(title: object) -> str:
    """``title`` if it is a usable video title, else raise ``BadRequest``."""
    if not isinstance(title, str):
        raise BadRequest("title must be a string")
    if len(title) > MAX_TITLE_LENGTH:
        raise BadRequest(f"title is longer than {MAX_TITLE_LENGTH} characters")
    if any(ord(c) < 32 for c in title):
        raise BadRequest("title must not contain control characters")
    return title


class Videos:
    """Register and read videos, their totals and top gifters."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        catalog: Catalog,
        *,
        max_events: int = 10_000,
        max_age_s: int = 600,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.catalog = catalog
        self.max_events = max_events
        self.max_age_s = max_age_s
        self.clock = clock
        #: How emit.lua publishes: sharded pub/sub on a cluster.
        self.publish = "SPUBLISH" if is_cluster(redis) else "PUBLISH"

    def emit_call(self, entry: SpendEntry, *, not_after: int | None = None) -> ScriptCall:
        """The emit.lua call counting gift ``entry`` on its video (:func:`video_emit_call`)."""
        return video_emit_call(
            self.keys, entry, self.catalog, max_events=self.max_events,
            min_id=max(self.clock() - self.max_age_s * 1000, 0), publish=self.publish,
            not_after=not_after,
        )  # fmt: skip

    async def since(self, video_id: str, cursor: str, limit: int) -> list[HistoryEntry]:
        """The video's events after ``cursor``, oldest first; CursorExpired if trimmed."""
        k = self.keys
        return await history_since(
            self.redis, k.video_history(video_id), k.video_seq(video_id), cursor, limit
        )

    async def create(self, creator: str, creator_name: str, title: object) -> Video:
        """Register a published video of ``creator`` under a fresh id."""
        check_id(creator, "creator")
        title = check_title(title)
        now = self.clock()
        video_id = new_id("v", now)
        await self.redis.hset(
            self.keys.video(video_id),
            mapping={
                "creator": creator, "creator_name": creator_name, "title": title,
                "created": str(now),
            },
        )  # fmt: skip
        await self.redis.zadd(self.keys.videos_of(creator), {video_id: now})
        return Video(video_id, creator, creator_name, title, now)

    async def get(self, video_id: str) -> Video:
        """Read a video, or raise ``NotFound``."""
        check_id(video_id, "video")
        raw = await self.redis.hgetall(self.keys.video(video_id))
        if not raw:
            raise NotFound("no such video")
        return Video(
            video_id, _text(raw, "creator"), _text(raw, "creator_name"), _text(raw, "title"),
            int(_text(raw, "created", "0")),
        )  # fmt: skip

    async def totals(self, video_id: str, top_n: int = 10) -> VideoTotals:
        """The video's coins and gifts received and its ``top_n`` gifters (by coins)."""
        k = self.keys
        raw = await self.redis.hgetall(k.video_totals(video_id))
        top = await self.redis.zrevrange(k.video_top(video_id), 0, top_n - 1, withscores=True)
        users = [u.decode() if isinstance(u, bytes) else str(u) for u, _ in top]
        names = await self.redis.hmget(k.video_names(video_id), users) if users else []
        return VideoTotals(
            int(_text(raw, "coins", "0")),
            int(_text(raw, "gifts", "0")),
            [
                {"user": user, "name": name.decode() if name else user, "coins": int(score)}
                for user, (_, score), name in zip(users, top, names, strict=True)
            ],
        )

    async def of_creator(self, creator: str, limit: int = 100) -> list[str]:
        """The creator's video ids, newest first (at most ``limit``)."""
        check_id(creator, "creator")
        ids = await self.redis.zrevrange(self.keys.videos_of(creator), 0, limit - 1)
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    async def last_seqs(self, video_ids: list[str]) -> dict[str, int]:
        """The seq of each video's latest event (0: none yet), in one round trip."""
        if not video_ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for video_id in video_ids:
            pipe.get(self.keys.video_seq(video_id))
        replies = await pipe.execute()
        return {v: int(r or 0) for v, r in zip(video_ids, replies, strict=True)}
