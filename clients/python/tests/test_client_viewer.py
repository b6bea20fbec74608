"""ViewerClient against a real server: acks, typed errors, events, and retries that pay once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from gifting_client import (
    Ack,
    Backoff,
    CommentEvent,
    Conflict,
    ConnectionFailed,
    GiftEvent,
    HighlightEvent,
    InsufficientFunds,
    OutcomeUnknown,
    RoomEvent,
    StreamNotLive,
    Unauthorized,
    UnknownItem,
    ViewerClient,
)
from tcp_proxy import TcpProxy

from tests.hub.conftest import HubServer, recv_until, serve

FAST = Backoff(initial=0.05, maximum=0.5)


def viewer(
    hub: HubServer, stream: str, user: str, url: str | None = None, **kw: Any
) -> ViewerClient:
    """A client of ``user`` (display name: the id, title-cased) with fast reconnects."""
    return ViewerClient(url or hub.ws, stream, hub.token(user, user.title()), backoff=FAST, **kw)


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait until ``check()`` holds (polled every 10 ms)."""
    async with asyncio.timeout(timeout):
        for _ in iter(int, 1):
            if await check():
                return
            await asyncio.sleep(0.01)


async def next_event(client: ViewerClient, pred: Callable[[RoomEvent], bool]) -> RoomEvent:
    async with asyncio.timeout(5):
        async for event in client:
            if pred(event):
                return event
    raise AssertionError("the events ended")


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
async def test_gift_is_acked_with_balance_and_combo_and_reaches_the_room(
    hub: HubServer, encoding: str
) -> None:
    stream, _ = await hub.stream()
    await hub.fund("alice")
    async with viewer(hub, stream, "alice", encoding=encoding) as client:
        first = await client.send_gift("rose", count=3)
        second = await client.send_gift("rose")
        assert isinstance(first, Ack)
        assert (first.balance, first.combo) == (697, 3)
        assert (second.balance, second.combo) == (696, 4)
        assert client.balance == 696
        event = await next_event(client, lambda e: e.event == second.event)
    assert isinstance(event, GiftEvent)
    assert event.sender.id == "alice" and event.sender.name == "Alice"
    assert (event.gift.id, event.gift.name, event.gift.tier) == ("rose", "Rose", 1)
    assert (event.count, event.combo, event.stream) == (1, 4, stream)


async def test_refusals_are_typed_and_a_failed_id_stays_failed(hub: HubServer) -> None:
    stream, _ = await hub.stream()
    async with viewer(hub, stream, "bob") as client:
        with pytest.raises(InsufficientFunds) as broke:
            await client.send_gift("galaxy", id="big-1")
        assert broke.value.id == "big-1" and broke.value.code == "insufficient_funds"
        await hub.fund("bob", "coins_1400")
        with pytest.raises(InsufficientFunds):  # same id: the original answer, even after a top-up
            await client.send_gift("galaxy", id="big-1")
        ack = await client.send_gift("galaxy")  # a new id is a new try
        assert ack.balance == 400
        with pytest.raises(UnknownItem):
            await client.send_gift("no_such_gift")
        with pytest.raises(Conflict):
            await client.send_gift("rose", id=ack.id)
        assert await client.send_gift("galaxy", id=ack.id) == ack
    assert (await hub.state.ledger.wallet("bob")).coins == 400


async def test_effects_comments_and_highlights(hub: HubServer) -> None:
    stream, _ = await hub.stream()
    await hub.fund("cleo")
    async with viewer(hub, stream, "cleo") as client:
        effect = await client.send_effect("confetti")
        assert effect.balance == 700 - 99 and effect.combo is None
        free = await client.send_comment("hello there")
        assert free.balance is None
        pinned = await client.send_comment("<b>pinned</b>", highlight="tier1")
        assert pinned.balance == 700 - 99 - 10
        comment = await next_event(client, lambda e: e.event == free.event)
        highlight = await next_event(client, lambda e: e.event == pinned.event)
    assert isinstance(comment, CommentEvent) and comment.text == "hello there"
    assert isinstance(highlight, HighlightEvent)
    assert highlight.text == "<b>pinned</b>" and highlight.highlight.tier == "tier1"
    assert highlight.highlight.pin_ms == 30_000


async def test_connect_is_refused_with_a_typed_error(hub: HubServer) -> None:
    stream, _ = await hub.stream()
    with pytest.raises(Unauthorized):
        await ViewerClient(hub.ws, stream, "not-a-token").connect()
    ended = await hub.state.streams.create("carol", "Carol", "over")
    await hub.state.streams.end(ended.stream, "carol")
    with pytest.raises(StreamNotLive):
        await ViewerClient(hub.ws, ended.stream, hub.token("dan")).connect()


async def test_token_function_is_called_on_every_connect(hub: HubServer, proxy: TcpProxy) -> None:
    stream, _ = await hub.stream()
    calls: list[int] = []

    async def fresh_token() -> str:
        calls.append(1)
        return hub.token("tia")

    async with ViewerClient(proxy.ws, stream, fresh_token, backoff=FAST) as client:

        async def reconnected() -> bool:
            return client.reconnects == 1

        proxy.cut()
        await until(reconnected)
    assert len(calls) == 2


async def test_an_ack_lost_with_the_connection_is_retried_with_the_same_id(
    hub: HubServer, proxy: TcpProxy
) -> None:
    """The server debits and acks, the ack never arrives, the network drops: the
    client reconnects, sends the same id again and gets the original ack; one debit."""
    stream, key = await hub.stream()
    await hub.fund("dave")
    price = hub.state.catalog.gifts["doughnut"].coins * 2
    async with (
        viewer(hub, stream, "dave", url=proxy.ws) as client,
        hub.overlay(stream, key) as overlay,
    ):
        await overlay.recv()  # snapshot
        proxy.swallow = True
        send = asyncio.create_task(client.send_gift("doughnut", count=2, id="lost-ack-1"))

        async def debited() -> bool:
            return (await hub.state.ledger.wallet("dave")).coins == 700 - price

        await until(debited)
        original = await recv_until(overlay, lambda m: m.get("kind") == "gift")
        await asyncio.sleep(0.05)
        assert not send.done()  # the ack went out and was lost
        proxy.swallow = False
        proxy.cut()
        ack = await asyncio.wait_for(send, 10)
        assert client.reconnects == 1
    assert ack.id == "lost-ack-1" and ack.event == original["event"]
    assert ack.balance == 700 - price and ack.combo == 2
    assert (await hub.state.ledger.wallet("dave")).coins == 700 - price


async def test_sends_in_flight_survive_a_server_restart_and_debit_once(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    """Acks lost, then the server restarts (on another port behind the same address);
    more gifts are sent while it is down. Every send resolves, each debited once."""
    rates = {"GIFTING_RATE_PER_S": 1000, "GIFTING_RATE_BURST": 2000}
    async with TcpProxy(0) as proxy:
        async with serve(redis_url, database_url, key_prefix, **rates) as first:
            proxy.upstream = first.port
            stream, _ = await first.stream()
            await first.fund("erin")
            client = viewer(first, stream, "erin", url=proxy.ws)
            await client.connect()
            proxy.swallow = True
            sends = [
                asyncio.create_task(client.send_gift("rosa", id=f"storm-{i}")) for i in range(20)
            ]

            async def debited() -> bool:
                return (await first.state.ledger.wallet("erin")).coins == 700 - 20 * 10

            await until(debited)
        assert not any(s.done() for s in sends)  # the server is gone, no ack came back
        sends += [
            asyncio.create_task(client.send_gift("rosa", id=f"storm-{i}")) for i in range(20, 40)
        ]
        await asyncio.sleep(0.2)
        proxy.swallow = False
        async with serve(redis_url, database_url, key_prefix, **rates) as second:
            proxy.upstream = second.port
            acks = await asyncio.wait_for(asyncio.gather(*sends), 20)
            assert client.reconnects >= 1
            await client.close()
            wallet = await second.state.ledger.wallet("erin")
    assert [a.id for a in acks] == [f"storm-{i}" for i in range(40)]
    assert len({a.event for a in acks}) == 40
    assert wallet.coins == 700 - 40 * 10
    assert [a.balance for a in acks[:20]] == sorted((a.balance for a in acks[:20]), reverse=True)
    assert min(a.balance or 0 for a in acks) == wallet.coins


async def test_close_with_a_send_in_flight_says_the_outcome_is_unknown(
    hub: HubServer, proxy: TcpProxy
) -> None:
    stream, _ = await hub.stream()
    await hub.fund("finn")
    client = viewer(hub, stream, "finn", url=proxy.ws)
    await client.connect()
    proxy.swallow = True
    send = asyncio.create_task(client.send_gift("perfume"))

    async def debited() -> bool:
        return (await hub.state.ledger.wallet("finn")).coins == 680

    await until(debited)
    await client.close()
    with pytest.raises(OutcomeUnknown) as unknown:
        await send
    # Another client (a restarted app) retries with the id: the original ack, no new debit.
    async with viewer(hub, stream, "finn") as again:
        ack = await again.send_gift("perfume", id=unknown.value.id)
    assert ack.balance == 680
    assert (await hub.state.ledger.wallet("finn")).coins == 680
    with pytest.raises(RuntimeError):
        await client.send_gift("rose")


async def test_ack_timeout_raises_outcome_unknown_with_the_id(
    hub: HubServer, proxy: TcpProxy
) -> None:
    stream, _ = await hub.stream()
    await hub.fund("gus")
    async with viewer(hub, stream, "gus", url=proxy.ws, ack_timeout=0.3) as client:
        proxy.swallow = True
        with pytest.raises(OutcomeUnknown) as unknown:
            await client.send_gift("rose", id="slow-1")
        assert unknown.value.id == "slow-1"
        proxy.swallow = False
        proxy.cut()
        ack = await client.send_gift("rose", id="slow-1")
    assert ack.balance == 699


async def test_ended_stream_ends_the_events_and_further_sends(hub: HubServer) -> None:
    stream, _ = await hub.stream()
    await hub.fund("hana")
    async with viewer(hub, stream, "hana") as client:
        await client.send_gift("rose")
        await hub.state.streams.end(stream, "carol")
        await hub.state.room_events.stream_ended(await hub.state.streams.get(stream))  # type: ignore[union-attr]
        kinds = [event.kind async for event in client]  # type: ignore[union-attr]
        assert kinds[-1] == "stream_ended"
        with pytest.raises(ConnectionFailed) as closed:
            await client.send_gift("rose")
        assert closed.value.close_code == 1000
