"""The client's pure parts: backoff, error mapping, event parsing, URLs. No server."""

from __future__ import annotations

import json

import pytest
from gifting_client import (
    Ack,
    Backoff,
    ErrorReply,
    GiftEvent,
    GoalEvent,
    GoalReached,
    HypeEnded,
    HypeEvent,
    InsufficientFunds,
    LevelUp,
    RateLimited,
    Unavailable,
    UnknownEvent,
    ViewerClient,
    error_from_reply,
)
from gifting_client.messages import Badge, decode_frame, encode_frame, parse_event
from gifting_client.transport import ws_url
from websockets.asyncio.server import ServerConnection, serve


def test_backoff_grows_to_its_cap_and_jitters_within_bounds() -> None:
    b = Backoff(initial=0.1, maximum=2.0, factor=2.0, jitter=0.5)
    assert [b.ceiling(n) for n in range(7)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert b.ceiling(10_000) == 2.0  # no overflow
    assert b.delay(3, rand=lambda: 0.0) == 0.8
    assert b.delay(3, rand=lambda: 1.0) == 0.4
    assert all(0.4 <= b.delay(3) <= 0.8 for _ in range(200))


@pytest.mark.parametrize(
    "kw", [{"initial": 0}, {"initial": 2, "maximum": 1}, {"factor": 0.5}, {"jitter": 1.5}]
)
def test_backoff_rejects_nonsense(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kw)


def test_error_codes_map_to_typed_exceptions() -> None:
    err = error_from_reply("insufficient_funds", "not enough coins", "c-1")
    assert isinstance(err, InsufficientFunds) and err.id == "c-1" and not err.retryable
    assert error_from_reply("unavailable", "x").retryable
    assert isinstance(error_from_reply("rate_limited", "x"), RateLimited)
    assert isinstance(error_from_reply("unavailable", "x"), Unavailable)
    future = error_from_reply("brand_new_code", "from a newer server", "c-2")
    assert type(future) is ErrorReply and future.code == "brand_new_code"


def test_events_parse_by_kind_and_unknown_kinds_survive() -> None:
    raw = {
        "op": "event", "kind": "gift", "stream": "s1", "seq": 42, "cursor": "1-0_42",
        "event": "e1", "ts": 1, "sender": {"id": "a", "name": "A"}, "future_field": 1,
        "gift": {"id": "rose", "name": "Rose", "coins": 1, "tier": 1, "streakable": True},
        "count": 1, "combo": 5, "coins": 1,
    }  # fmt: skip
    event = parse_event(raw)
    assert isinstance(event, GiftEvent) and event.kind == "gift" and event.combo == 5
    other = parse_event({**raw, "kind": "fireworks_show"})
    assert isinstance(other, UnknownEvent) and other.kind == "fireworks_show"
    assert other.data["future_field"] == 1


def test_the_senders_badge_and_the_highlight_level_parse() -> None:
    badge = {"id": "vip", "name": "VIP", "tier": 3}
    raw = {
        "op": "event", "kind": "highlight", "stream": "s1", "seq": 1, "cursor": "1-0_1",
        "event": "e1", "ts": 1, "sender": {"id": "a", "name": "A", "badge": badge},
        "text": "hi", "highlight": {"tier": "tier2", "pin_ms": 60000, "level": 2}, "coins": 50,
    }  # fmt: skip
    event = parse_event(raw)
    assert event.sender.badge == Badge("vip", "VIP", 3)  # type: ignore[union-attr]
    assert event.highlight.level == 2  # type: ignore[union-attr]


def test_the_senders_level_and_level_up_parse() -> None:
    head = {"op": "event", "stream": "s1", "seq": 1, "cursor": "1-0_1", "event": "l1", "ts": 1}
    up = parse_event({**head, "kind": "level_up", "user": "a", "name": "A", "level": 3})
    assert up == LevelUp(stream="s1", seq=1, cursor="1-0_1", event="l1", ts=1, user="a",
                         name="A", level=3)  # fmt: skip
    comment = {**head, "kind": "comment", "text": "hi"}
    leveled = parse_event({**comment, "sender": {"id": "a", "name": "A", "level": 3}})
    assert leveled.sender.level == 3  # type: ignore[union-attr]
    older = parse_event({**comment, "sender": {"id": "a", "name": "A"}})  # an older server
    assert older.sender.level == 0  # type: ignore[union-attr]


def test_goal_events_parse_with_goals_and_without() -> None:
    head = {"op": "event", "stream": "s1", "seq": 1, "cursor": "1-0_1", "event": "r1", "ts": 1}
    hit = parse_event({**head, "kind": "goal_reached", "goal": "g1", "step": None})
    assert isinstance(hit, GoalReached) and (hit.goal, hit.step) == ("g1", None)
    goal = {"id": "g1", "title": "T", "progress": 12, "target": 50, "gift": "rose",
            "steps": [10, 25], "steps_reached": [10], "reached": False}  # fmt: skip
    ev = parse_event({**head, "kind": "goal", "goals": [goal],
                      "goal": {"target": 50, "progress": 12, "gift": "rose"}})  # fmt: skip
    assert isinstance(ev, GoalEvent) and ev.goals[0].steps_reached == [10]
    cleared = parse_event({**head, "kind": "goal", "goals": [], "goal": None})
    assert isinstance(cleared, GoalEvent) and cleared.goal is None
    older = parse_event({**head, "kind": "goal", "goal": {"target": 5, "progress": 1}})
    assert isinstance(older, GoalEvent) and older.goals == []


def test_hype_events_parse() -> None:
    head = {"op": "event", "stream": "s1", "seq": 1, "cursor": "1-0_1", "event": "h1.2", "ts": 1}
    up = parse_event({**head, "kind": "hype", "level": 2, "progress": 20, "target": 200,
                      "expires_at": 61_000})  # fmt: skip
    assert isinstance(up, HypeEvent) and (up.level, up.target) == (2, 200)
    end = parse_event({**head, "event": "h1.end", "kind": "hype_ended", "level": 2})
    assert isinstance(end, HypeEnded) and end.level == 2


def test_frames_round_trip_in_both_encodings() -> None:
    msg = {"op": "gift", "id": "c-1", "gift": "rose", "count": 2}
    assert decode_frame(encode_frame(msg, "json")) == msg
    assert decode_frame(encode_frame(msg, "msgpack")) == msg
    assert isinstance(encode_frame(msg, "json"), str)
    with pytest.raises(ValueError):
        decode_frame("[1, 2]")


def test_urls() -> None:
    assert (
        ws_url("http://h:1/", "/v1/ws/viewer", {"stream": "s"}) == "ws://h:1/v1/ws/viewer?stream=s"
    )
    assert ws_url("https://h/base", "/v1/x", {"a": "b c"}) == "wss://h/base/v1/x?a=b+c"
    with pytest.raises(ValueError):
        ws_url("ftp://h", "/x", {})


class ScriptedServer:
    """A stand-in server that answers each gift id with the replies scripted for it."""

    def __init__(self, replies: dict[str, list[dict[str, object]]]) -> None:
        self.replies = replies
        self.received: list[str] = []

    async def handler(self, ws: ServerConnection) -> None:
        async for frame in ws:
            msg = json.loads(frame)
            if msg["op"] == "ping":
                await ws.send(json.dumps({"op": "pong", "id": msg.get("id")}))
                continue
            self.received.append(msg["id"])
            reply = self.replies[msg["id"]].pop(0)
            await ws.send(json.dumps({**reply, "id": msg["id"]}))


async def test_unavailable_and_rate_limited_are_retried_with_the_same_id() -> None:
    ack = {"op": "ack", "event": "e1", "balance": 5, "combo": 1}
    busy = {"op": "error", "code": "unavailable", "message": "try again"}
    slow = {"op": "error", "code": "rate_limited", "message": "slow down"}
    fake = ScriptedServer({"a": [busy, slow, ack], "b": [slow, slow, slow]})
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        fast = Backoff(initial=0.01, maximum=0.05)
        client = ViewerClient(f"ws://127.0.0.1:{port}", "s1", "t", backoff=fast, max_retries=2)
        async with client as c:
            assert await c.send_gift("rose", id="a") == Ack("a", "e1", 5, 1)
            with pytest.raises(RateLimited) as limited:
                await c.send_gift("rose", id="b")
    assert fake.received == ["a", "a", "a", "b", "b", "b"]
    assert limited.value.id == "b"


async def test_a_retry_waits_at_least_the_retry_after_the_server_asked_for() -> None:
    import time

    ack = {"op": "ack", "event": "e1", "balance": 5, "combo": 1}
    slow = {"op": "error", "code": "rate_limited", "message": "slow down", "retry_after_ms": 300}
    fake = ScriptedServer({"a": [slow, ack]})
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        fast = Backoff(initial=0.01, maximum=0.05)
        async with ViewerClient(f"ws://127.0.0.1:{port}", "s1", "t", backoff=fast) as c:
            started = time.monotonic()
            assert await c.send_gift("rose", id="a") == Ack("a", "e1", 5, 1)
            assert time.monotonic() - started >= 0.3  # not the 10-50 ms of its own backoff
