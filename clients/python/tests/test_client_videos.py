"""The Python client's video calls against the real server: create, gift (idempotent), read."""

from __future__ import annotations

import asyncio

import pytest
from gifting_client import (
    Blocked,
    Conflict,
    Forbidden,
    InsufficientFunds,
    NotFound,
    SyncApiClient,
    UnknownItem,
    VideoGift,
    VideoInfo,
)
from test_client_http import FAST, base, caught_up, client, user

from tests.hub.conftest import HubServer


async def test_create_gift_and_read_a_video(server: HubServer) -> None:
    creator, fan = user(), user()
    async with client(server, creator, creator=True) as studio, client(server, fan) as api:
        video = await studio.create_video("my clip")
        assert isinstance(video, VideoInfo) and video.creator == creator
        assert (video.totals.coins, video.totals.gifts, video.top) == (0, 0, [])
        await api.dev_purchase("coins_700")
        sent = await api.gift_video(video.video, "doughnut", 2, id="vg-1")
        assert isinstance(sent, VideoGift)
        assert (sent.balance, sent.coins, sent.replayed) == (640, 60, False)
        again = await api.gift_video(video.video, "doughnut", 2, id="vg-1")
        assert again.replayed and (again.event, again.balance) == (sent.event, 640)
        with pytest.raises(Conflict) as conflict:
            await api.gift_video(video.video, "rose", 2, id="vg-1")
        assert conflict.value.status == 409 and conflict.value.id == "vg-1"
        generated = await api.gift_video(video.video, "rose")
        assert generated.id and generated.balance == 639
        with pytest.raises(UnknownItem):
            await api.gift_video(video.video, "crown")
        with pytest.raises(NotFound):
            await api.gift_video("nosuch", "rose")
        with pytest.raises(InsufficientFunds):
            await api.gift_video(video.video, "universe")
        with pytest.raises(Forbidden):
            await studio.gift_video(video.video, "rose")
        view = await api.get_video(video.video)
        assert (view.totals.coins, view.totals.gifts) == (61, 3)
        assert [(t.user, t.coins) for t in view.top] == [(fan, 61)]
        stream = await studio.create_stream("live")
        await studio.block(stream.stream, fan, scope="creator")
        with pytest.raises(Blocked):
            await api.gift_video(video.video, "rose")
    await caught_up(server)
    assert (await server.state.ledger.wallet(creator)).diamonds == 61 // 2


async def test_the_sync_client_gifts_a_video(server: HubServer) -> None:
    creator, fan = user(), user()
    async with client(server, creator, creator=True) as studio:
        video = (await studio.create_video("clip")).video
    token = server.token(fan, fan.title())

    def gift() -> tuple[VideoGift, VideoGift, VideoInfo]:
        with SyncApiClient(base(server), token, backoff=FAST) as api:
            api.dev_purchase("coins_70")
            first = api.gift_video(video, "rose", 3, id="s-1")
            return first, api.gift_video(video, "rose", 3, id="s-1"), api.get_video(video)

    first, again, view = await asyncio.to_thread(gift)
    assert (first.balance, again.replayed, view.totals.coins) == (67, True, 3)
