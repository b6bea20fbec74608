"""Spends racing ``POST /v1/streams/{id}/end``: nothing is debited after the end answered.

The hub reads a batch's live flags one round trip before its debits. Here
one batch is held right after that read (it saw the stream live) until the
end has answered, while viewers keep sending gifts: the held batch and all
that queued behind it must be refused, and every gift that was debited must
be shown in the room before ``stream_ended``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import msgspec
import websockets

from tests.hub.conftest import HubServer, decode, encode, serve

VIEWERS = 4


class _HoldAfterLiveRead:
    """The pipeline's Streams, holding one batch right after a live read that said "live"."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.hold: asyncio.Event | None = None
        self.held = asyncio.Event()

    async def admission_many(self, ids: Any) -> tuple[dict[str, bool], Any]:
        """The gift path's read: live flags and guest lists (gifting/hub/spends.py)."""
        flags, guests = await self._real.admission_many(ids)
        hold = self.hold
        if hold is not None and any(flags.values()):
            self.hold = None
            self.held.set()
            await hold.wait()
        return flags, guests

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


async def _viewer(hub: HubServer, stream: str, user: str, acked: list[str]) -> list[str]:
    """Send roses one after another until refused or closed; return the error codes seen."""
    codes: list[str] = []
    with contextlib.suppress(websockets.ConnectionClosed):
        async with hub.viewer(stream, user) as ws:
            for i in range(10_000):
                await ws.send(encode({"op": "gift", "id": f"{user}-{i}", "gift": "rose"}))
                while True:
                    msg = decode(await asyncio.wait_for(ws.recv(), 10))
                    if msg.get("id") == f"{user}-{i}" and msg["op"] in ("ack", "error"):
                        break
                if msg["op"] == "ack":
                    acked.append(msg["event"])
                    continue
                codes.append(msg["code"])
                if msg["code"] == "stream_not_live":
                    return codes
    return codes


async def _spends_of(hub: HubServer, stream: str) -> set[str]:
    found: set[str] = set()
    for outbox in hub.state.keys.outboxes():
        for _, f in await hub.state.redis.xrange(outbox):
            if f.get(b"type") == b"spend" and f.get(b"stream") == stream.encode():
                found.add(f[b"event"].decode())
    return found


async def test_no_spend_is_debited_after_the_end_answered(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    async with serve(
        redis_url, database_url, key_prefix, GIFTING_RATE_PER_S=1000, GIFTING_RATE_BURST=2000
    ) as hub:
        assert hub.state.hub is not None
        pipeline = hub.state.hub.pipeline
        injected = _HoldAfterLiveRead(pipeline.streams)
        pipeline.streams = injected
        stream, _ = await hub.stream("cleo")
        users = [f"fan{i}" for i in range(VIEWERS)]
        for u in users:
            await hub.fund(u)
        acked: list[str] = []
        storm = [asyncio.ensure_future(_viewer(hub, stream, u, acked)) for u in users]
        try:
            for _ in range(500):  # until the storm is on
                if len(acked) >= 20:
                    break
                await asyncio.sleep(0.02)
            release = injected.hold = asyncio.Event()
            await asyncio.wait_for(injected.held.wait(), 5)  # a batch read "live" and waits
            auth = {"Authorization": f"Bearer {hub.token('cleo', creator=True)}"}
            async with httpx.AsyncClient() as client:
                r = await client.post(
                    f"http://127.0.0.1:{hub.port}/v1/streams/{stream}/end", headers=auth
                )
            assert r.status_code == 200 and r.json()["live"] is False
            debited_at_end = await _spends_of(hub, stream)
            release.set()
            codes = await asyncio.wait_for(asyncio.gather(*storm), 20)
        finally:
            for task in storm:
                task.cancel()
        await asyncio.sleep(0.3)  # the settle step of anything (wrongly) debited late
        assert await _spends_of(hub, stream) == debited_at_end, "debited after the end answered"
        assert set(acked) <= debited_at_end
        # Each viewer was refused stream_not_live or closed by stream_ended, nothing else.
        assert all(set(c) <= {"stream_not_live"} for c in codes), codes
        history = await hub.state.redis.xrange(hub.state.keys.room_history(stream))
        bodies = [msgspec.json.decode(f[b"d"]) for _, f in history]
        kinds = [b["kind"] for b in bodies]
        shown = [b["event"] for b in bodies if b["kind"] == "gift"]
        assert kinds[-1] == "stream_ended" and kinds.count("stream_ended") == 1
        assert sorted(shown) == sorted(debited_at_end)  # every debited gift shown once, before
