"""``PUT /v1/streams/{id}/guests`` over HTTP: the creator sets at most 8 guests; bad input changes
nothing; the public view shows them. (Gifts to guests: tests/hub/test_guests.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from api_support import Api


def _path(stream: str) -> str:
    return f"/v1/streams/{stream}/guests"


async def test_the_creator_sets_guests_and_the_public_view_shows_them(api: Api) -> None:
    stream = (await api.create_stream("carol"))["stream"]
    body = {"guests": ["bob", {"user": "dan", "name": "Dan D."}, {"user": "eve"}]}
    r = await api.send("PUT", _path(stream), body, user="carol")
    assert r.status_code == 200, r.text
    expected = [
        {"user": "bob", "name": "bob"},
        {"user": "dan", "name": "Dan D."},
        {"user": "eve", "name": "eve"},
    ]
    assert r.json() == {"stream": stream, "guests": expected}
    assert (await api.get(f"/v1/streams/{stream}")).json()["guests"] == expected
    # The whole list is replaced; an empty one clears it.
    r = await api.send("PUT", _path(stream), {"guests": ["dan"]}, user="carol")
    assert r.json()["guests"] == [{"user": "dan", "name": "dan"}]
    r = await api.send("PUT", _path(stream), {"guests": []}, user="carol")
    assert r.status_code == 200
    assert (await api.get(f"/v1/streams/{stream}")).json()["guests"] == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"guests": [f"u{i}" for i in range(9)]}, "8"),
        ({"guests": ["bob", "bob"]}, "twice"),
        ({"guests": ["bob", {"user": "bob", "name": "B"}]}, "twice"),
        ({"guests": ["carol"]}, "host"),
        ({"guests": ["has space"]}, "guests"),
        ({"guests": ["a:b"]}, "guests"),
        ({"guests": [""]}, "guests"),
        ({"guests": [7]}, "guests"),
        ({"guests": [{"user": "bob", "name": ""}]}, "name"),
        ({"guests": [{"user": "bob", "name": "x\u0001"}]}, "name"),
        ({"guests": [{"user": "bob", "extra": 1}]}, "extra"),
        ({"guests": "bob"}, "guests"),
        ({}, "guests"),
    ],
)
async def test_a_bad_guest_list_is_a_clear_400_and_changes_nothing(
    api: Api, body: dict[str, Any], reason: str
) -> None:
    stream = (await api.create_stream("carol"))["stream"]
    await api.send("PUT", _path(stream), {"guests": ["zed"]}, user="carol")
    before = await api.snapshot()
    r = await api.send("PUT", _path(stream), body, user="carol")
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "bad_request"
    assert reason in r.json()["message"]
    assert await api.snapshot() == before


async def test_only_the_creator_sets_guests_of_a_live_existing_stream(api: Api) -> None:
    stream = (await api.create_stream("carol"))["stream"]
    before = await api.snapshot()
    r = await api.send("PUT", _path(stream), {"guests": ["bob"]}, user="bob")
    assert (r.status_code, r.json()["code"]) == (403, "forbidden")
    r = await api.send("PUT", _path(stream), {"guests": ["bob"]})
    assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
    r = await api.send("PUT", _path("s-nope"), {"guests": ["bob"]}, user="carol")
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    assert await api.snapshot() == before
    ended = await api.send("POST", f"/v1/streams/{stream}/end", user="carol")
    assert ended.status_code == 200
    before = await api.snapshot()
    r = await api.send("PUT", _path(stream), {"guests": ["bob"]}, user="carol")
    assert (r.status_code, r.json()["code"]) == (409, "stream_not_live")
    assert await api.snapshot() == before
