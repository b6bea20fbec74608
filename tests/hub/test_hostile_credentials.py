"""Forged tokens and guessed overlay keys on the WebSockets (docs/contract.md §3.6, §3.7).

Every bad token (tests/hostile.py: alg none, HS512 and RS256 headers, another
key, expired, not yet valid, no or another iss/aud, bad claims, huge), in the
``Authorization`` header or the ``token`` parameter, is refused with
``unauthorized`` and close 1008. Overlay keys guessed at random, of another
stream, empty or huge are refused with ``forbidden`` and 1008, and an unknown
stream gets the very same answer as a wrong key, so a guess learns nothing.
A handshake too big for the server (a URL or a header over 8 KiB) gets an
HTTP 414 or 431 at once, never a connection left hanging. A viewer can only
spend from its own wallet: another viewer's message id is just a new id.
Nothing refused changes Redis or logs a server error.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import InvalidStatus

from tests.api.api_support import snapshot
from tests.hostile import ServerLog, bad_tokens, claims, hs256, server_log
from tests.hub.conftest import JWT_SECRET, HubServer, encode, recv, recv_until

BAD_TOKENS = bad_tokens(JWT_SECRET)


class Guarded:
    """A hub whose Redis and logs are watched: each refusal must change and log nothing."""

    def __init__(self, hub: HubServer, log: ServerLog) -> None:
        self.hub, self.log = hub, log

    def __repr__(self) -> str:
        return "Guarded(hub)"

    async def state(self) -> dict[bytes, object]:
        return await snapshot(self.hub.state.redis, self.hub.state.keys.prefix)

    async def refused(
        self, url: str, code: str, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Connect to ``url``; assert an ``error`` of ``code`` then close 1008; return the error."""
        before = await self.state()
        async with websockets.connect(url, additional_headers=headers or {}) as ws:
            error = await recv(ws)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
        assert error["op"] == "error" and error["code"] == code, error
        assert "id" not in error
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert closed.value.rcvd.reason == error["message"][:120]
        assert await self.state() == before
        assert not self.log.take()
        return error

    async def too_big(self, url: str, headers: dict[str, str] | None = None) -> int:
        """Connect to ``url``; assert an HTTP refusal of the handshake, quickly; its status."""
        with pytest.raises(InvalidStatus) as refused:
            async with asyncio.timeout(3):
                await websockets.connect(url, additional_headers=headers or {}, open_timeout=None)
        assert not self.log.take()
        return refused.value.response.status_code


@pytest_asyncio.fixture(loop_scope="session")
async def guarded(hub: HubServer) -> AsyncIterator[Guarded]:
    await hub.fund("alice")
    with server_log() as log:
        yield Guarded(hub, log)


# --------------------------------------------------------------------------- viewer tokens


#: Past this, a token makes the request line or a header line longer than the server reads.
HTTP_LINE_LIMIT = 8000


@pytest.mark.parametrize("where", ["header", "query"])
@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_a_bad_token_is_refused_1008(guarded: Guarded, case: str, where: str) -> None:
    hub = guarded.hub
    stream, _ = await hub.stream()
    token = BAD_TOKENS[case]()
    url = f"{hub.ws}/v1/ws/viewer?stream={stream}"
    headers = {"Authorization": f"Bearer {token}"} if where == "header" else {}
    if where == "query":
        url += f"&token={quote(token, safe='')}"
    if len(token) > HTTP_LINE_LIMIT:
        assert await guarded.too_big(url, headers) == (431 if headers else 414)
        return
    error = await guarded.refused(url, "unauthorized", headers)
    assert error["message"]


async def test_a_token_that_is_no_bearer_token_is_refused(guarded: Guarded) -> None:
    hub = guarded.hub
    stream, _ = await hub.stream()
    url = f"{hub.ws}/v1/ws/viewer?stream={stream}"
    for header in ["Basic YWxpY2U6cHc=", "Bearer", "Token " + hub.token("alice"), "bearer  "]:
        await guarded.refused(url, "unauthorized", {"Authorization": header})
    # A header of another scheme is not silently skipped for the query parameter.
    good = hub.token("alice")
    await guarded.refused(f"{url}&token={good}", "unauthorized", {"Authorization": "Basic x"})


@pytest.mark.parametrize("size", [4097, 6000, 7900])
async def test_a_huge_token_within_the_http_limits_is_refused_1008(
    guarded: Guarded, size: int
) -> None:
    hub = guarded.hub
    stream, _ = await hub.stream()
    url = f"{hub.ws}/v1/ws/viewer?stream={stream}"
    for headers, query in [({"Authorization": "Bearer " + "a" * size}, ""),
                           ({}, "&token=" + "a" * size)]:  # fmt: skip
        error = await guarded.refused(url + query, "unauthorized", headers)
        assert error["message"] == "bearer token is too long"


@pytest.mark.parametrize("size", [9000, 64 * 1024, 1024 * 1024])
async def test_a_handshake_over_the_server_limits_is_answered_at_once(
    guarded: Guarded, size: int
) -> None:
    """Found hanging (uvicorn's sans-I/O protocol never wrote websockets' 414/431): fixed
    by gifting/hub/uvicorn_ws.py."""
    hub = guarded.hub
    stream, key = await hub.stream()
    before = await guarded.state()
    viewer = f"{hub.ws}/v1/ws/viewer?stream={stream}"
    assert await guarded.too_big(viewer + "&token=" + "a" * size) == 414
    assert await guarded.too_big(viewer, {"Authorization": "Bearer " + "a" * size}) == 431
    assert await guarded.too_big(f"{hub.ws}/v1/ws/overlay?stream={stream}&key={'k' * size}") == 414
    many = {f"X-Pad-{i}": "x" for i in range(200)}
    assert await guarded.too_big(f"{hub.ws}/v1/ws/overlay?stream={stream}&key={key}", many) == 431
    assert await guarded.state() == before


async def test_a_good_token_in_the_query_still_works(guarded: Guarded) -> None:
    """The refusals above are not a broken endpoint."""
    hub = guarded.hub
    stream, _ = await hub.stream()
    url = f"{hub.ws}/v1/ws/viewer?stream={stream}&token={hub.token('alice')}"
    async with websockets.connect(url) as ws:
        await ws.send(encode({"op": "ping", "id": "p"}))
        assert await recv(ws) == {"op": "pong", "id": "p"}


async def test_a_token_of_another_issuer_or_audience_is_refused_even_if_signed(
    guarded: Guarded,
) -> None:
    hub = guarded.hub
    stream, _ = await hub.stream()
    url = f"{hub.ws}/v1/ws/viewer?stream={stream}"
    for over in ({"iss": "billing"}, {"aud": "billing"}, {"iss": None}, {"aud": None},
                 {"aud": ["billing", "gifting-admin"]}):  # fmt: skip
        token = hs256(JWT_SECRET, claims(**over))
        error = await guarded.refused(url, "unauthorized", {"Authorization": f"Bearer {token}"})
        assert (
            "issuer" in error["message"]
            or "audience" in error["message"]
            or ("missing" in error["message"])
        ), error


# --------------------------------------------------------------------------- nobody acts for others


async def test_a_viewer_reusing_another_viewers_message_id_spends_only_its_own_wallet(
    guarded: Guarded,
) -> None:
    """Ids are per sender: bob sending alice's id gets his own outcome, never her ack, and
    her wallet and her stored result stay as they were."""
    hub = guarded.hub
    stream, _ = await hub.stream()
    gift = {"op": "gift", "id": "shared-1", "gift": "doughnut", "count": 1}
    async with hub.viewer(stream, "alice") as alice:
        await alice.send(encode(gift))
        ack = await recv_until(alice, lambda m: m["op"] in ("ack", "error"))
    assert ack["op"] == "ack"
    alice_before = await hub.state.ledger.wallet("alice")
    async with hub.viewer(stream, "bob") as bob:  # bob has no coins
        for sender_field in ({}, {"sender": "alice"}, {"user": "alice"}):
            await bob.send(encode(gift | sender_field))
            reply = await recv_until(bob, lambda m: m["op"] in ("ack", "error"))
            assert reply["op"] == "error", reply
            assert reply["code"] == ("insufficient_funds" if not sender_field else "bad_request")
    assert await hub.state.ledger.wallet("alice") == alice_before
    async with hub.viewer(stream, "alice") as alice:  # alice's retry: still her first ack
        await alice.send(encode(gift))
        again = await recv_until(alice, lambda m: m["op"] in ("ack", "error"))
    assert again == ack
    assert (await hub.state.ledger.wallet("bob")).coins == 0
    assert not guarded.log.take()


@pytest.mark.parametrize(
    ("first", "second"),
    [(("c", "a.b"), ("b.c", "a")),
     (("u" * 60 + "1111", "x" * 64), ("u" * 60 + "2222", "x" * 64))],
    ids=["dotted ids", "long ids"],
)  # fmt: skip
async def test_a_free_comment_is_never_taken_for_another_users(
    guarded: Guarded, first: tuple[str, str], second: tuple[str, str]
) -> None:
    """Two users, each with their own message id: two comments in the room, two events."""
    hub = guarded.hub
    stream, key = await hub.stream()
    async with hub.overlay(stream, key) as overlay:
        assert (await recv(overlay))["op"] == "snapshot"
        acks = []
        for (user, client_id), text in zip((first, second), ("first", "second"), strict=True):
            async with hub.viewer(stream, user) as ws:
                await ws.send(encode({"op": "comment", "id": client_id, "text": text}))
                acks.append(await recv_until(ws, lambda m: m["op"] in ("ack", "error")))
        assert [a["op"] for a in acks] == ["ack", "ack"]
        assert acks[0]["event"] != acks[1]["event"]
        shown = [await recv_until(overlay, lambda m: m.get("kind") == "comment", 3)
                 for _ in range(2)]  # fmt: skip
    assert [(e["sender"]["id"], e["text"]) for e in shown] == [
        (first[0], "first"),
        (second[0], "second"),
    ]


# --------------------------------------------------------------------------- overlay keys


def _overlay_url(hub: HubServer, stream: str, key: str | None) -> str:
    url = f"{hub.ws}/v1/ws/overlay?stream={quote(stream, safe='')}"
    return url if key is None else f"{url}&key={quote(key, safe='')}"


async def test_overlay_keys_that_are_not_the_streams_are_refused_alike(guarded: Guarded) -> None:
    """Wrong, another stream's, empty, missing, huge, a real key on an unknown stream, the
    creator's token instead of the key: one error, one message, one close code."""
    hub = guarded.hub
    stream, key = await hub.stream()
    other, other_key = await hub.stream("dave")
    unknown = "s" + secrets.token_hex(11)
    cases = [
        (stream, other_key), (other, key), (stream, ""), (stream, None), (stream, key + "x"),
        (stream, key[:-1]), (stream, key.upper()), (stream, "k" * 5000), (stream, " " + key),
        (unknown, key), (unknown, other_key), (unknown, ""), (stream, key + "\x00"),
        (stream, "é" * 40),
    ]  # fmt: skip
    answers = set()
    for s, k in cases:
        error = await guarded.refused(_overlay_url(hub, s, k), "forbidden")
        answers.add((error["code"], error["message"]))
    # The creator's own token is no overlay key (it is not even looked at).
    owner = {"Authorization": f"Bearer {hub.token('carol', creator=True)}"}
    for s, k in [(stream, None), (stream, ""), (stream, hub.token("carol", creator=True))]:
        error = await guarded.refused(_overlay_url(hub, s, k), "forbidden", owner)
        answers.add((error["code"], error["message"]))
    assert answers == {("forbidden", "wrong overlay key")}
    async with hub.overlay(stream, key) as ws:  # the right key still opens it
        assert (await recv(ws))["op"] == "snapshot"


@pytest_asyncio.fixture(loop_scope="session")
async def live_stream(hub: HubServer) -> tuple[str, str]:
    """A live stream with a few events in its room's history, and its overlay key."""
    stream, key = await hub.stream()
    async with hub.viewer(stream, "alice") as ws:
        for i in range(3):
            await ws.send(encode({"op": "comment", "id": f"hello-{i}", "text": "hello"}))
            assert (await recv_until(ws, lambda m: m["op"] in ("ack", "error")))["op"] == "ack"
    return stream, key


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(guess=st.one_of(
    st.text(min_size=1, max_size=64),
    st.binary(min_size=1, max_size=48).map(bytes.hex),
    st.from_regex(r"[A-Za-z0-9_\-]{32}", fullmatch=True),
))  # fmt: skip
async def test_a_guessed_overlay_key_is_refused(
    guarded: Guarded, live_stream: tuple[str, str], guess: str
) -> None:
    stream, key = live_stream
    assert guess != key
    error = await guarded.refused(_overlay_url(guarded.hub, stream, guess), "forbidden")
    assert error["message"] == "wrong overlay key"


cursors = st.one_of(
    st.text(max_size=70),
    st.tuples(st.sampled_from(["0", "1", "99999999999999999999", "18446744073709551616", "٣",
                               "²", "-1", "", "1e3", " 1", "00"]),
              st.sampled_from(["0", "1", "٣", "²", "18446744073709551616", ""]),
              st.sampled_from(["0", "1", "5", "²", "٣", "-1", "9" * 30, ""]))
    .map(lambda t: f"{t[0]}-{t[1]}_{t[2]}"),
)  # fmt: skip


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(since=cursors)
async def test_a_hostile_since_cursor_is_refused_or_expired_never_an_internal_error(
    guarded: Guarded, live_stream: tuple[str, str], since: str
) -> None:
    """An overlay's ``since=``: a malformed cursor is ``bad_request`` and 1008; one that
    parses but is not of this room gets ``cursor_expired`` and a snapshot, or its history;
    never 1011 (which tells the overlay to come back with the same cursor)."""
    hub = guarded.hub
    stream, key = live_stream
    guarded.log.take()  # what a failed example before this one left
    before = await guarded.state()
    url = _overlay_url(hub, stream, key) + f"&since={quote(since, safe='')}"
    got: list[dict[str, Any]] = []
    async with websockets.connect(url) as ws:
        await ws.send(encode({"op": "ping", "id": "p"}))
        try:
            async with asyncio.timeout(5):
                while not got or got[-1] != {"op": "pong", "id": "p"}:
                    got.append(await recv(ws))
            close = None
        except websockets.ConnectionClosed as closed:
            close = closed.rcvd
    errors = [m["code"] for m in got if m["op"] == "error"]
    if errors == ["bad_request"]:
        assert close is not None and close.code == 1008, (close, got)
    else:
        assert close is None, (close, got)
        assert errors in ([], ["cursor_expired"]), got
        if errors:
            assert got[1]["op"] == "snapshot", got
    assert await guarded.state() == before
    assert not guarded.log.take()


async def test_a_malformed_stream_id_is_a_bad_request_on_both_sockets(guarded: Guarded) -> None:
    hub = guarded.hub
    _, key = await hub.stream()
    for bad in ["", "a b", "x" * 65, "s:1", "{s}", "s\n1"]:
        await guarded.refused(_overlay_url(hub, bad, key), "bad_request")
        viewer = f"{hub.ws}/v1/ws/viewer?stream={quote(bad, safe='')}"
        await guarded.refused(viewer, "bad_request", {"Authorization": f"Bearer {hub.token('a')}"})


@pytest.mark.parametrize("size", [5000, 64 * 1024, 1024 * 1024])
async def test_a_huge_token_over_http_is_refused_promptly(guarded: Guarded, size: int) -> None:
    """The same tokens on the HTTP API of the same server (httptools): 401, never a 5xx."""
    import httpx

    before = await guarded.state()
    async with httpx.AsyncClient(timeout=5) as client:
        r = await client.get(f"http://127.0.0.1:{guarded.hub.port}/v1/wallet",
                             headers={"Authorization": "Bearer " + "a" * size})  # fmt: skip
    assert r.status_code in (401, 431), r.status_code
    if r.status_code == 401:
        assert r.json() == {"code": "unauthorized", "message": "bearer token is too long"}
    assert await guarded.state() == before
    assert not guarded.log.take()
