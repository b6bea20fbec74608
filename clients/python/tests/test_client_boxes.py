"""ViewerClient.drop_box and .claim against a real server: acks, shares and typed errors."""

from __future__ import annotations

import asyncio
import time

import pytest
from gifting_client import (
    AlreadyClaimed,
    Backoff,
    BadRequest,
    BoxClaimedEvent,
    BoxClosed,
    BoxDroppedEvent,
    BoxNotOpen,
    UnknownBox,
    ViewerClient,
)

from tests.hub.conftest import HubServer

FAST = Backoff(initial=0.05, maximum=0.5)


def viewer(hub: HubServer, stream: str, user: str) -> ViewerClient:
    return ViewerClient(hub.ws, stream, hub.token(user, user.title()), backoff=FAST)


async def test_drop_and_claim_a_box(hub: HubServer) -> None:
    stream, _ = await hub.stream()
    await hub.fund("ann")
    async with viewer(hub, stream, "ann") as ann, viewer(hub, stream, "ben") as ben:
        with pytest.raises(BadRequest, match="coins"):
            await ann.drop_box(50, 2, 10)
        ack = await ann.drop_box(100, 3, 10, id="box-1")
        assert ack.box and ack.balance == 600
        assert (await ann.drop_box(100, 3, 10, id="box-1")) == ack  # a retry: the same ack
        k = hub.state.keys
        for _ in range(500):  # the box is created by the settle step, right after the ack
            if await hub.state.redis.exists(k.box(stream, ack.box)):
                break
            await asyncio.sleep(0.01)
        with pytest.raises(BoxNotOpen):
            await ben.claim(ack.box)
        with pytest.raises(UnknownBox):
            await ben.claim("qnosuchbox")
        await hub.state.redis.hset(k.box(stream, ack.box), "opens_at", int(time.time() * 1000))
        won = await ben.claim(ack.box, id="c1")
        seen: dict[str, object] = {}
        async with asyncio.timeout(5):
            async for event in ann:
                seen[event.kind] = event
                if isinstance(event, BoxClaimedEvent):
                    break
        dropped = seen["box_dropped"]
        assert isinstance(dropped, BoxDroppedEvent)
        assert (dropped.box, dropped.coins, dropped.winners, dropped.sender.id) == (
            ack.box, 100, 3, "ann",
        )  # fmt: skip
        claimed = seen["box_claimed"]
        assert isinstance(claimed, BoxClaimedEvent)
        assert (claimed.user, claimed.share, claimed.order) == ("ben", 34, 1)
        assert (won.box, won.share, won.balance) == (ack.box, 34, 34)
        assert await ben.claim(ack.box, id="c1") == won
        with pytest.raises(AlreadyClaimed):
            await ben.claim(ack.box, id="c2")
        await hub.state.redis.hset(k.box(stream, ack.box), "closes_at", 0)
        with pytest.raises(BoxClosed):
            await ann.claim(ack.box)
