"""``GET /v1/streams``: the live listing, its order, its paging and its refusals.

Viewers here are written as hubs write them (``Presence.report``, the real
store on the real Redis); tests/hub/test_discovery.py counts real viewer
connections on two hubs.
"""

from __future__ import annotations

from typing import Any

import pytest
from api_support import Api

from gifting.clock import now_ms
from gifting.store.presence import Presence

pytestmark = pytest.mark.cluster


async def _list(api: Api, **params: Any) -> dict[str, Any]:
    r = await api.get("/v1/streams", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def _all(api: Api, limit: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    page = await _list(api, live=1, limit=limit)
    out += page["streams"]
    while page["next"] is not None:
        page = await _list(api, live=1, limit=limit, cursor=page["next"])
        assert len(page["streams"]) <= limit
        out += page["streams"]
    return out


def _presence(api: Api) -> Presence:
    return Presence(api.redis, api.state.keys)


async def test_lists_live_streams_most_watched_first_with_totals(api: Api) -> None:
    quiet = await api.create_stream("cara", "quiet")
    busy = await api.create_stream("dan", "busy")
    ended = await api.create_stream("eve", "over")
    r = await api.send("POST", f"/v1/streams/{ended['stream']}/end", user="eve")
    assert r.status_code == 200
    await api.buy("vic")
    # vic gifts nothing here: totals come from the stream's totals hash, which
    # record_spend fills; write one spend as the hub would after settling it.
    await api.state.streams.record_spend(busy["stream"], "vic", "Vic", "gift", "rose", 3, 3)
    fresh = now_ms() + 60_000
    await _presence(api).report("hub-1", {busy["stream"]: 4, quiet["stream"]: 1}, (), fresh, 60_000)
    await _presence(api).report("hub-2", {busy["stream"]: 2}, (), fresh, 60_000)

    body = await _list(api, live=1)
    assert body["next"] is None
    assert body["streams"] == [
        {"stream": busy["stream"], "creator": "dan", "title": "busy", "viewers": 6,
         "totals": {"coins": 3, "gifts": 3}},
        {"stream": quiet["stream"], "creator": "cara", "title": "quiet", "viewers": 1,
         "totals": {"coins": 0, "gifts": 0}},
    ]  # fmt: skip
    assert await _list(api) == body  # live absent: the same listing


async def test_expired_reports_stop_counting_and_a_hub_that_left_is_subtracted(api: Api) -> None:
    s = (await api.create_stream("cara"))["stream"]
    presence = _presence(api)
    await presence.report("alive", {s: 2}, (), now_ms() + 60_000, 60_000)
    await presence.report("dead", {s: 5}, (), now_ms() - 1, 60_000)  # its last beat expired
    assert (await _list(api))["streams"][0]["viewers"] == 2
    assert await api.redis.hkeys(api.state.keys.stream_viewers(s)) == [b"alive"]  # pruned
    await presence.report("alive", {}, [s], 0, 0)  # its viewers left
    assert (await _list(api))["streams"][0]["viewers"] == 0


async def test_paging_returns_every_live_stream_once_while_counts_move(api: Api) -> None:
    ids = [(await api.create_stream(f"c{i}", f"t{i}"))["stream"] for i in range(7)]
    presence = _presence(api)
    fresh = now_ms() + 60_000
    await presence.report("h", {s: i + 1 for i, s in enumerate(ids)}, (), fresh, 60_000)

    first = await _list(api, limit=3)
    assert [s["stream"] for s in first["streams"]] == ids[::-1][:3]
    # The least watched become the most watched mid-listing: no repeat, no skip.
    await presence.report("h", {s: 100 - i for i, s in enumerate(ids)}, (), fresh, 60_000)
    second = await _list(api, limit=3, cursor=first["next"])
    third = await _list(api, limit=3, cursor=second["next"])
    assert third["next"] is None
    seen = [s["stream"] for p in (first, second, third) for s in p["streams"]]
    assert seen == ids[::-1]
    assert third["streams"][0]["viewers"] == 100  # counts shown are current
    assert sorted(s["stream"] for s in await _all(api, 2)) == sorted(ids)


async def test_ended_streams_leave_the_listing_and_later_pages(api: Api) -> None:
    ids = [(await api.create_stream("cara", f"t{i}"))["stream"] for i in range(4)]
    first = await _list(api, limit=2)
    later = [s for s in ids if s not in {x["stream"] for x in first["streams"]}]
    r = await api.send("POST", f"/v1/streams/{later[0]}/end", user="cara")
    assert r.status_code == 200
    second = await _list(api, limit=2, cursor=first["next"])
    assert [s["stream"] for s in second["streams"]] == later[1:]
    assert later[0] not in {s["stream"] for s in await _all(api, 10)}
    r = await api.send("POST", f"/v1/streams/{later[0]}/end", user="cara")  # a retry
    assert r.status_code == 200
    assert len(await _all(api, 10)) == 3


@pytest.mark.parametrize(
    ("params", "status", "code", "words"),
    [
        ({"limit": "0"}, 400, "bad_request", "limit"),
        ({"limit": "101"}, 400, "bad_request", "limit"),
        ({"limit": "ten"}, 400, "bad_request", "limit"),
        ({"cursor": "nope"}, 400, "bad_request", "cursor"),
        ({"cursor": "abcdefgh12.x"}, 400, "bad_request", "cursor"),
        ({"cursor": "x" * 65}, 400, "bad_request", "cursor"),
        ({"cursor": "abcdefgh12.0"}, 410, "cursor_expired", "expired"),
        ({"live": "0"}, 400, "bad_request", "live"),
        ({"live": "true"}, 400, "bad_request", "live"),
    ],
)
async def test_bad_query_is_refused_and_changes_nothing(
    api: Api, params: dict[str, str], status: int, code: str, words: str
) -> None:
    for i in range(3):
        await api.create_stream("cara", f"t{i}")
    before = await api.snapshot()
    r = await api.get("/v1/streams", params=params)
    assert r.status_code == status, r.text
    assert r.json()["code"] == code
    assert words in r.json()["message"]
    assert await api.snapshot() == before
