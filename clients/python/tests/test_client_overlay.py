"""OverlayClient against a real server: snapshot, resume by cursor, no duplicates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from gifting_client import (
    START_OF_ROOM,
    Backoff,
    ConnectionFailed,
    Forbidden,
    GiftEvent,
    OverlayClient,
    RoomEvent,
    Snapshot,
    StreamEnded,
    ViewerClient,
)
from tcp_proxy import TcpProxy

from tests.hub.conftest import HubServer

FAST = Backoff(initial=0.05, maximum=0.5)


async def gifts(hub: HubServer, stream: str, user: str, ids: range) -> list[str]:
    """Send one rose per id; return the acked event ids."""
    async with ViewerClient(hub.ws, stream, hub.token(user)) as client:
        return [(await client.send_gift("rose", id=f"{user}-{i}")).event for i in ids]


async def emitted(hub: HubServer, stream: str, seq: int) -> None:
    """Wait until the room has its first ``seq`` events: a gift is acked when debited, and
    reaches the room just after (the settle step follows the acks)."""
    assert hub.state.roomlog is not None
    async with asyncio.timeout(10):
        while (await hub.state.roomlog.snapshot(stream)).seq < seq:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def collect(items: AsyncIterator[RoomEvent | Snapshot], n: int) -> list[RoomEvent]:
    """Read until ``n`` gift events arrived (snapshots and other kinds skipped)."""
    out: list[RoomEvent] = []
    async with asyncio.timeout(10):
        async for item in items:
            if isinstance(item, GiftEvent):
                out.append(item)
                if len(out) == n:
                    return out
    raise AssertionError("the iteration ended early")


async def test_snapshot_then_every_event_once_across_a_dropped_connection(
    hub: HubServer, proxy: TcpProxy
) -> None:
    stream, key = await hub.stream()
    await hub.fund("ivy")
    early = await gifts(hub, stream, "ivy", range(3))
    await emitted(hub, stream, 3)
    overlay = OverlayClient(proxy.ws, stream, key, backoff=FAST)
    items = aiter(overlay)
    snapshot = await anext(items)
    assert isinstance(snapshot, Snapshot) and not snapshot.expired
    assert snapshot.live and snapshot.totals.coins == 3 and snapshot.top[0].user == "ivy"
    assert snapshot.creator is not None and snapshot.creator.id == "carol"
    before = await gifts(hub, stream, "ivy", range(3, 8))
    seen = await collect(items, 5)
    proxy.cut()  # the overlay is away while more gifts are sent
    during = await gifts(hub, stream, "ivy", range(8, 14))
    after_task = asyncio.create_task(collect(items, 6 + 4))
    await asyncio.sleep(0.3)
    after = await gifts(hub, stream, "ivy", range(14, 18))
    seen += await after_task
    await overlay.close()
    assert [e.event for e in seen] == before + during + after
    assert not set(early) & {e.event for e in seen}
    seqs = [e.seq for e in seen]
    assert seqs == sorted(set(seqs))
    assert overlay.reconnects == 1 and overlay.cursor == seen[-1].cursor


async def test_resume_in_a_new_process_with_a_kept_cursor(hub: HubServer) -> None:
    stream, key = await hub.stream()
    await hub.fund("jon")
    async with OverlayClient(hub.ws, stream, key) as first:
        items = aiter(first)
        await anext(items)  # snapshot
        sent = await gifts(hub, stream, "jon", range(4))
        seen = await collect(items, 4)
        kept = first.cursor
    missed = await gifts(hub, stream, "jon", range(4, 9))
    async with OverlayClient(hub.ws, stream, key, since=kept) as second:
        resumed = await collect(aiter(second), 5)
    assert [e.event for e in seen] == sent
    assert [e.event for e in resumed] == missed


async def test_an_empty_room_resumes_from_its_start(hub: HubServer, proxy: TcpProxy) -> None:
    stream, key = await hub.stream()
    await hub.fund("kim")
    overlay = OverlayClient(proxy.ws, stream, key, backoff=FAST)
    items = aiter(overlay)
    snapshot = await anext(items)
    assert isinstance(snapshot, Snapshot) and snapshot.cursor is None and snapshot.seq == 0
    assert overlay.cursor == START_OF_ROOM
    proxy.cut()
    sent = await gifts(hub, stream, "kim", range(3))
    seen = await collect(items, 3)
    await overlay.close()
    assert [e.event for e in seen] == sent


async def test_expired_cursor_yields_a_snapshot_marked_expired(hub: HubServer) -> None:
    stream, key = await hub.stream()
    await hub.fund("lea")
    await gifts(hub, stream, "lea", range(3))
    await asyncio.sleep(0.1)
    history = hub.state.keys.room_history(stream)
    rows = await hub.state.redis.xrange(history)
    old = f"{rows[0][0].decode()}_{int(rows[0][1][b's'])}"
    await hub.state.redis.xtrim(history, maxlen=1, approximate=False)
    async with OverlayClient(hub.ws, stream, key, since=old) as overlay:
        snapshot = await anext(aiter(overlay))
    assert isinstance(snapshot, Snapshot) and snapshot.expired
    assert snapshot.totals.coins == 3 and overlay.expired == 1
    assert overlay.cursor == snapshot.cursor and overlay.last_seq == snapshot.seq


async def test_a_malformed_cursor_starts_over_from_a_snapshot(hub: HubServer) -> None:
    stream, key = await hub.stream()
    overlay = OverlayClient(hub.ws, stream, key, since="garbage", backoff=FAST)
    snapshot = await asyncio.wait_for(anext(aiter(overlay)), 5)
    await overlay.close()
    assert isinstance(snapshot, Snapshot)


async def test_wrong_key_raises_forbidden(hub: HubServer) -> None:
    stream, _ = await hub.stream()
    with pytest.raises(Forbidden):
        async for _item in OverlayClient(hub.ws, stream, "wrong-key"):
            pass


async def test_iteration_ends_with_the_stream(hub: HubServer) -> None:
    stream, key = await hub.stream()
    async with OverlayClient(hub.ws, stream, key) as overlay:
        items = aiter(overlay)
        await anext(items)
        await hub.state.streams.end(stream, "carol")
        assert hub.state.room_events is not None
        await hub.state.room_events.stream_ended(await hub.state.streams.get(stream))
        rest = [item async for item in items]
    assert isinstance(rest[-1], StreamEnded) and rest[-1].kind == "stream_ended"


async def test_gives_up_after_max_reconnects(hub: HubServer) -> None:
    async with TcpProxy(1) as dead:  # nothing listens upstream
        overlay = OverlayClient(dead.ws, "s1", "k", backoff=FAST, max_reconnects=2)
        with pytest.raises(ConnectionFailed):
            async for _item in overlay:
                pass
        assert dead.connections == 3
