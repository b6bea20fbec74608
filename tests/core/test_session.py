"""A connection's life without a socket: every transition of :class:`Session` and its actions."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from gifting.core.catalog import Catalog, load_catalog
from gifting.core.disconnect import (
    BAD_CURSOR,
    FLOODING,
    FRAME_TOO_BIG,
    INTERNAL_ERROR,
    STREAM_ENDED,
    WRONG_FRAME_TYPE,
    CloseCode,
    Disconnect,
)
from gifting.core.errors import (
    BadRequest,
    GiftingError,
    InsufficientFunds,
    NotFound,
    StreamNotLive,
    Unauthorized,
)
from gifting.core.protocol import JSON, MSGPACK
from gifting.core.ratelimit import SenderLimits
from gifting.core.session import (
    FLOOD_STRIKES,
    FLOOD_WINDOW_MS,
    MAX_IN_FLIGHT,
    Close,
    CountSpend,
    InvalidState,
    PostComment,
    Recover,
    Send,
    SendSnapshot,
    Session,
    State,
    SubmitSpend,
)

CATALOG: Catalog = load_catalog()


class Clock:
    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.ms


class CursorExpired(GiftingError):
    """Stands in for the room log's error: core knows it by its code."""

    code = "cursor_expired"


def limits(rate: float = 20, burst: float = 40, clock: Clock | None = None) -> SenderLimits:
    return SenderLimits(rate, burst, clock or Clock())


def live_viewer(encoding: Any = JSON, lim: SenderLimits | None = None) -> Session:
    s = Session(encoding, "viewer", CATALOG, lim or limits())
    s.authenticated(True, "ann", "Ann")
    assert s.joined() == []
    assert s.state is State.LIVE
    return s


def overlay(live: bool = True) -> Session:
    s = Session(JSON, "overlay", CATALOG, limits())
    s.authenticated(live)
    return s


def frame(**message: Any) -> str:
    return msgspec.json.encode(message).decode()


def sent(actions: list[Any]) -> list[dict[str, Any]]:
    return [a.message for a in actions if isinstance(a, Send)]


# -- connect ------------------------------------------------------------------------------
def test_a_refused_connection_gets_the_error_then_its_close() -> None:
    s = Session(JSON, "viewer", CATALOG, limits())
    actions = s.refuse(Unauthorized("missing bearer token"))
    assert actions == [
        Send({"op": "error", "code": "unauthorized", "message": "missing bearer token"}),
        Close(Disconnect(CloseCode.POLICY, "missing bearer token")),
    ]
    assert s.state is State.CLOSING


def test_a_live_viewer_goes_live_on_join() -> None:
    s = live_viewer()
    assert s.user == "ann" and s.name == "Ann"


def test_a_viewer_of_an_ended_stream_is_told_and_closed_1000() -> None:
    s = Session(JSON, "viewer", CATALOG, limits())
    s.authenticated(False, "ann", "Ann")
    err = StreamNotLive("the stream is not live")
    assert s.joined() == [
        Send({"op": "error", "code": err.code, "message": err.message}),
        Close(STREAM_ENDED),
    ]
    assert s.state is State.CLOSING
    assert s.receive_frame(frame(op="ping")) == []  # frames after the close are ignored


def test_events_out_of_order_are_a_shell_bug() -> None:
    s = Session(JSON, "viewer", CATALOG, limits())
    with pytest.raises(InvalidState):
        s.joined()
    with pytest.raises(InvalidState):
        s.receive_frame(frame(op="ping"))
    s.authenticated(True, "ann", "Ann")
    with pytest.raises(InvalidState):
        s.refuse(NotFound("no such stream"))
    with pytest.raises(InvalidState):
        s.recovered()


# -- overlay recovery ---------------------------------------------------------------------
def test_an_overlay_without_a_cursor_gets_a_snapshot_then_goes_live() -> None:
    s = overlay()
    assert s.joined(None) == [SendSnapshot()]
    assert s.state is State.RECOVERING
    assert s.recovered() == []
    assert s.state is State.LIVE


def test_an_overlay_with_a_cursor_recovers_from_it() -> None:
    s = overlay()
    assert s.joined("1700000000000-0_7") == [Recover("1700000000000-0_7")]
    assert s.recovered() == []
    assert s.state is State.LIVE


def test_an_expired_cursor_gets_its_error_and_a_snapshot_instead() -> None:
    s = overlay()
    request = s.joined("1-0_1")[0]
    assert isinstance(request, Recover)
    err = CursorExpired("the cursor is older than the room's history")
    assert s.failed(request, err) == [
        Send({"op": "error", "code": "cursor_expired", "message": err.message}),
        SendSnapshot(),
    ]
    assert s.state is State.RECOVERING
    assert s.recovered() == []
    assert s.state is State.LIVE


def test_a_malformed_cursor_gets_its_error_and_a_1008() -> None:
    s = overlay()
    request = s.joined("nonsense")[0]
    assert isinstance(request, Recover)
    actions = s.failed(request, BadRequest("bad cursor"))
    assert actions == [
        Send({"op": "error", "code": "bad_request", "message": "bad cursor"}),
        Close(BAD_CURSOR),
    ]
    assert s.state is State.CLOSING


@pytest.mark.parametrize("since", [None, "1-0_1"])
def test_a_read_that_breaks_during_recovery_closes_1011(since: str | None) -> None:
    s = overlay()
    request = s.joined(since)[0]
    assert isinstance(request, Recover | SendSnapshot)
    assert s.failed(request, ConnectionError("redis went away")) == [Close(INTERNAL_ERROR)]
    assert INTERNAL_ERROR.reconnect


def test_an_overlay_of_an_ended_stream_gets_its_snapshot_then_a_1000() -> None:
    s = overlay(live=False)
    assert s.joined(None) == [SendSnapshot()]
    assert s.recovered() == [Close(STREAM_ENDED)]
    assert s.state is State.CLOSING


def test_an_overlay_only_listens_and_pings() -> None:
    s = overlay()
    s.joined(None)
    s.recovered()
    assert sent(s.receive_frame(frame(op="ping", id="p1"))) == [{"op": "pong", "id": "p1"}]
    assert s.receive_frame(frame(op="gift", id="g1", gift="rose")) == [
        CountSpend("any", "bad_request"),
        Send(
            {
                "op": "error",
                "code": "bad_request",
                "message": "overlays only listen (and ping)",
                "id": "g1",
            }
        ),
    ]


# -- frames -------------------------------------------------------------------------------
def test_ping_is_answered_with_or_without_an_id() -> None:
    s = live_viewer()
    assert s.receive_frame(frame(op="ping")) == [Send({"op": "pong"})]
    assert s.receive_frame(frame(op="ping", id="x")) == [Send({"op": "pong", "id": "x"})]


@pytest.mark.parametrize(
    ("encoding", "raw"), [(JSON, b'{"op":"ping"}'), (MSGPACK, '{"op":"ping"}')]
)
def test_the_wrong_frame_type_is_an_error_and_a_1003(encoding: Any, raw: str | bytes) -> None:
    s = live_viewer(encoding)
    actions = s.receive_frame(raw)
    assert actions[-1] == Close(WRONG_FRAME_TYPE)
    assert sent(actions)[0]["code"] == "bad_request"
    assert s.state is State.CLOSING
    assert s.receive_frame(raw) == []


@pytest.mark.parametrize(
    ("raw", "closed"),
    [("x" * 100, False), ("x" * 101, True), ("é" * 50, False), ("é" * 51, True),
     ("€" * 34, True), (b"x" * 101, True)],
)  # fmt: skip
def test_a_frame_over_the_size_limit_closes_1009(raw: str | bytes, closed: bool) -> None:
    s = Session(JSON, "viewer", CATALOG, limits(), max_frame_bytes=100)
    s.authenticated(True, "ann", "Ann")
    s.joined()
    actions = s.receive_frame(raw)
    assert (actions == [Close(FRAME_TOO_BIG)]) is closed  # counted in UTF-8 bytes
    assert (s.state is State.CLOSING) is (closed or isinstance(raw, bytes))


def test_a_frame_with_no_data_is_the_wrong_type() -> None:
    s = live_viewer()
    assert s.receive_frame(None)[-1] == Close(WRONG_FRAME_TYPE)


def test_a_malformed_frame_is_an_error_echoing_the_id_and_counts_nothing() -> None:
    s = live_viewer()
    actions = s.receive_frame('{"op":"gift","id":"b1","gift":"rose","count":0}')
    assert len(actions) == 1
    assert sent(actions)[0]["code"] == "bad_request" and sent(actions)[0]["id"] == "b1"
    assert s.state is State.LIVE


def test_a_gift_is_priced_and_submitted() -> None:
    s = live_viewer()
    (action,) = s.receive_frame(frame(op="gift", id="g1", gift="rose", count=3))
    assert isinstance(action, SubmitSpend)
    assert action.client_id == "g1" and action.text == ""
    assert action.priced.kind == "gift" and action.priced.coins == 3
    assert s.in_flight == 1


def test_an_effect_and_a_highlight_are_submitted_a_free_comment_is_posted() -> None:
    s = live_viewer()
    (effect,) = s.receive_frame(frame(op="effect", id="e1", effect="confetti"))
    assert isinstance(effect, SubmitSpend) and effect.priced.coins == 99
    (highlight,) = s.receive_frame(frame(op="comment", id="h1", text="hi!", highlight="tier1"))
    assert isinstance(highlight, SubmitSpend) and highlight.text == "hi!"
    assert s.receive_frame(frame(op="comment", id="c1", text="hello")) == [
        PostComment("c1", "hello")
    ]
    assert s.in_flight == 2


def test_an_unknown_gift_is_an_error_counted_as_any() -> None:
    s = live_viewer()
    actions = s.receive_frame(frame(op="gift", id="g1", gift="no_such_gift"))
    assert actions[0] == CountSpend("any", "unknown_item")
    assert sent(actions)[0]["id"] == "g1"
    assert s.in_flight == 0


def test_the_in_flight_limit_refuses_with_rate_limited() -> None:
    s = live_viewer(lim=limits(rate=0, burst=MAX_IN_FLIGHT + 1))
    for i in range(MAX_IN_FLIGHT):
        assert isinstance(
            s.receive_frame(frame(op="gift", id=f"g{i}", gift="rose"))[0], SubmitSpend
        )
    actions = s.receive_frame(frame(op="gift", id="over", gift="rose"))
    assert actions[0] == CountSpend("any", "rate_limited")
    assert sent(actions)[0]["id"] == "over"
    s.spend_acked("g0", "gift", "e0", 10, 1)  # one settles: room for one more
    assert s.in_flight == MAX_IN_FLIGHT - 1


def test_a_rate_limited_frame_says_when_to_retry() -> None:
    clock = Clock()
    s = live_viewer(lim=limits(rate=4, burst=1, clock=clock))
    assert isinstance(s.receive_frame(frame(op="gift", id="g0", gift="rose"))[0], SubmitSpend)
    actions = s.receive_frame(frame(op="gift", id="g1", gift="rose"))
    assert actions[0] == CountSpend("any", "rate_limited")
    (reply,) = sent(actions)
    assert reply["id"] == "g1" and reply["retry_after_ms"] == 250  # one token at 4/s
    clock.ms += 100
    (reply,) = sent(s.receive_frame(frame(op="gift", id="g1", gift="rose")))
    assert reply["retry_after_ms"] == 150
    clock.ms += 150  # waited as told: the retry goes through
    assert isinstance(s.receive_frame(frame(op="gift", id="g1", gift="rose"))[0], SubmitSpend)


def test_a_client_that_waits_as_told_is_never_closed() -> None:
    clock = Clock()
    s = live_viewer(lim=limits(rate=20, burst=2, clock=clock))
    acked = 0
    for i in range(FLOOD_STRIKES * 10):  # many gifts queued, sent one at a time
        while True:
            actions = s.receive_frame(frame(op="gift", id=f"g{i}", gift="rose"))
            if isinstance(actions[0], SubmitSpend):
                s.spend_acked(f"g{i}", "gift", f"e{i}", 1, 1)
                acked += 1
                break
            clock.ms += sent(actions)[0]["retry_after_ms"]  # backs off as told
    assert acked == FLOOD_STRIKES * 10 and s.strikes == 0 and s.state is State.LIVE


def test_frames_sent_while_told_to_wait_are_strikes_and_a_flood_closes_1008() -> None:
    clock = Clock()
    s = live_viewer(lim=limits(rate=1, burst=1, clock=clock))
    assert isinstance(s.receive_frame(frame(op="comment", id="c0", text="x"))[0], PostComment)
    first = s.receive_frame(frame(op="comment", id="c1", text="x"))
    assert sent(first)[0]["code"] == "rate_limited" and s.strikes == 0  # it was not told yet
    for i in range(2, FLOOD_STRIKES + 2):
        actions = s.receive_frame(frame(op="comment", id=f"c{i}", text="x"))
        assert actions[0] == CountSpend("any", "rate_limited")
        assert sent(actions)[0]["code"] == "rate_limited"
    assert s.strikes == FLOOD_STRIKES and s.state is State.LIVE
    actions = s.receive_frame(frame(op="comment", id="last", text="x"))
    assert actions == [CountSpend("any", "rate_limited"), Close(FLOODING)]
    assert s.state is State.CLOSING


def test_strikes_decay_a_burst_of_them_now_and_then_is_not_a_flood() -> None:
    clock = Clock()
    s = live_viewer(lim=limits(rate=1, burst=1, clock=clock))
    for _ in range(5):  # five bursts of strikes, each under the bound, a window apart
        s.receive_frame(frame(op="ping"))
        for _ in range(FLOOD_STRIKES):
            s.receive_frame(frame(op="ping"))
        assert s.state is State.LIVE
        clock.ms += FLOOD_WINDOW_MS
    assert s.strikes == 5 * (FLOOD_STRIKES - 1)


def test_pings_and_malformed_frames_are_charged_too() -> None:
    clock = Clock()
    s = live_viewer(lim=limits(rate=1, burst=3, clock=clock))
    assert s.receive_frame(frame(op="ping")) == [Send({"op": "pong"})]
    assert sent(s.receive_frame("{nope"))[0]["code"] == "bad_request"
    assert sent(s.receive_frame(frame(op="ping", id="p")))[0] == {"op": "pong", "id": "p"}
    (limited,) = sent(s.receive_frame(frame(op="ping", id="p2")))
    assert limited["code"] == "rate_limited" and limited["id"] == "p2"
    (limited,) = sent(s.receive_frame('{"op":"gift","id":"b1","count":0}'))
    assert limited["code"] == "rate_limited" and limited["id"] == "b1"
    flood = [s.receive_frame(frame(op="ping")) for _ in range(FLOOD_STRIKES * 2)]
    assert flood[-1] == [] and s.state is State.CLOSING
    # b1 was the first strike (sent after p2 was told to wait); the flood had the rest.
    replies = sum(1 for actions in flood for a in actions if isinstance(a, Send))
    assert replies == FLOOD_STRIKES - 1


def test_an_overlays_frames_are_charged_to_its_own_bucket() -> None:
    clock = Clock()
    lim = limits(rate=1, burst=2, clock=clock)
    first = Session(JSON, "overlay", CATALOG, lim)
    second = Session(JSON, "overlay", CATALOG, lim)
    for s in (first, second):
        s.authenticated(True)
        s.joined(None)
        s.recovered()
    assert sent(first.receive_frame(frame(op="ping"))) == [{"op": "pong"}]
    assert sent(first.receive_frame(frame(op="gift", id="g", gift="rose")))[0]["id"] == "g"
    assert sent(first.receive_frame(frame(op="ping")))[0]["code"] == "rate_limited"
    assert sent(second.receive_frame(frame(op="ping"))) == [{"op": "pong"}]  # its own
    for _ in range(FLOOD_STRIKES + 1):
        first.receive_frame(frame(op="ping"))
    assert first.state is State.CLOSING and second.state is State.LIVE


def test_the_rate_limit_is_the_senders_across_connections() -> None:
    shared = limits(rate=0, burst=1)
    first, second = live_viewer(lim=shared), live_viewer(lim=shared)
    assert isinstance(first.receive_frame(frame(op="gift", id="a", gift="rose"))[0], SubmitSpend)
    assert second.receive_frame(frame(op="gift", id="b", gift="rose"))[0] == CountSpend(
        "any", "rate_limited"
    )


# -- outcomes -----------------------------------------------------------------------------
def test_an_acked_gift_carries_its_combo_other_spends_do_not() -> None:
    s = live_viewer()
    s.receive_frame(frame(op="gift", id="g1", gift="rose"))
    s.receive_frame(frame(op="effect", id="e1", effect="confetti"))
    assert s.spend_acked("g1", "gift", "e-1", 41, 3) == [
        CountSpend("gift", "ok"),
        Send({"op": "ack", "id": "g1", "event": "e-1", "balance": 41, "combo": 3}),
    ]
    assert s.spend_acked("e1", "effect", "e-2", 0, 0) == [
        CountSpend("effect", "ok"),
        Send({"op": "ack", "id": "e1", "event": "e-2", "balance": 0}),
    ]
    assert s.in_flight == 0


def test_a_refused_spend_keeps_its_code_an_unknown_failure_says_retry() -> None:
    s = live_viewer()
    s.receive_frame(frame(op="gift", id="g1", gift="rose"))
    s.receive_frame(frame(op="gift", id="g2", gift="rose"))
    assert s.spend_failed("g1", "gift", InsufficientFunds("not enough coins")) == [
        CountSpend("gift", "insufficient_funds"),
        Send(
            {"op": "error", "code": "insufficient_funds", "message": "not enough coins", "id": "g1"}
        ),
    ]
    actions = s.spend_failed("g2", "gift", TimeoutError())
    assert actions[0] == CountSpend("gift", "unavailable")
    assert sent(actions) == [
        {
            "op": "error",
            "code": "unavailable",
            "message": "internal error; retry with the same id",
            "id": "g2",
        }
    ]
    assert s.in_flight == 0


def test_a_spend_that_could_not_be_submitted_frees_its_slot() -> None:
    s = live_viewer()
    (request,) = s.receive_frame(frame(op="gift", id="g1", gift="rose"))
    assert isinstance(request, SubmitSpend)
    actions = s.failed(request, RuntimeError("no loop"))
    assert sent(actions)[0]["code"] == "unavailable" and s.in_flight == 0


def test_a_comment_is_acked_or_gets_its_error() -> None:
    s = live_viewer()
    (request,) = s.receive_frame(frame(op="comment", id="c1", text="hello"))
    assert isinstance(request, PostComment)
    assert s.comment_posted("c1", "mc1.ann") == [
        Send({"op": "ack", "id": "c1", "event": "mc1.ann"})
    ]
    actions = s.failed(request, StreamNotLive("the stream is not live"))
    assert actions[0] == CountSpend("any", "stream_not_live")
    assert sent(actions)[0]["id"] == "c1"
    assert sent(s.failed(request, OSError("redis")))[0]["code"] == "unavailable"


def test_after_the_close_late_acks_are_counted_not_sent() -> None:
    s = live_viewer()
    s.receive_frame(frame(op="gift", id="g1", gift="rose"))
    s.receive_frame(frame(op="gift", id="g2", gift="rose"))
    s.receive_frame(b"binary on a JSON connection")  # closing now
    assert s.spend_acked("g1", "gift", "e-1", 1, 1) == [CountSpend("gift", "ok")]
    s.closed()
    assert s.state is State.CLOSED
    assert s.spend_failed("g2", "gift", TimeoutError()) == [CountSpend("gift", "unavailable")]
    assert s.receive_frame(frame(op="ping")) == []
    assert s.in_flight == 0


def test_a_lagging_overlay_catches_up_and_a_close_meanwhile_ends_it_quietly() -> None:
    s = overlay()
    s.joined(None)
    s.recovered()
    assert s.lagged("1-0_5") == [Recover("1-0_5")]
    assert s.state is State.RECOVERING
    assert s.lagged("1-0_6") == []  # already catching up
    assert sent(s.receive_frame(frame(op="ping"))) == [{"op": "pong"}]  # it reads meanwhile
    assert s.recovered() == [] and s.state is State.LIVE
    s.lagged("1-0_7")
    s.receive_frame(b"binary on a JSON connection")  # closing now (1003)
    assert s.failed(Recover("1-0_7"), ConnectionError("redis")) == []
    assert s.recovered() == []
    assert s.state is State.CLOSING


# -- treasure boxes ---------------------------------------------------------------------
def test_a_box_is_a_spend_and_its_ack_names_the_box() -> None:
    s = live_viewer()
    frame = '{"op":"box","id":"b1","coins":101,"winners":4,"opens_in_s":10}'
    (submit,) = s.receive_frame(frame)
    assert isinstance(submit, SubmitSpend)
    p = submit.priced
    assert (p.kind, p.item, p.coins, p.count, p.unit_coins) == ("box", "4:10", 101, 1, 101)
    _, send = s.spend_acked("b1", "box", "e19abc", 200, 0)
    assert isinstance(send, Send)
    assert send.message == {"op": "ack", "id": "b1", "event": "e19abc", "balance": 200,
                            "box": "q19abc"}  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        '"coins":99,"winners":4,"opens_in_s":10', '"coins":100,"winners":0,"opens_in_s":10',
        '"coins":100,"winners":101,"opens_in_s":10', '"coins":100,"winners":4,"opens_in_s":9',
        '"coins":100,"winners":4,"opens_in_s":301', '"coins":100.0,"winners":4,"opens_in_s":10',
        '"coins":true,"winners":4,"opens_in_s":10', '"coins":"100","winners":4,"opens_in_s":10',
        '"coins":9223372036854775808,"winners":4,"opens_in_s":10', '"winners":4,"opens_in_s":10',
        '"coins":100,"winners":4,"opens_in_s":10,"to":"x"',
    ],
)  # fmt: skip
def test_a_bad_box_is_a_bad_request_and_submits_nothing(body: str) -> None:
    s = live_viewer()
    actions = s.receive_frame('{"op":"box","id":"b1",' + body + "}")
    assert not any(isinstance(a, SubmitSpend) for a in actions)
    sends = [a for a in actions if isinstance(a, Send)]
    assert [m.message["code"] for m in sends] == ["bad_request"]
    assert s.in_flight == 0


def test_a_claim_asks_the_shell_and_its_answers_are_acks_or_errors() -> None:
    from gifting.core.errors import AlreadyClaimed
    from gifting.core.session import ClaimBox

    s = live_viewer()
    (claim,) = s.receive_frame('{"op":"claim","id":"c1","box":"q19abc"}')
    assert claim == ClaimBox("c1", "q19abc")
    _, send = s.box_claimed("c1", "q19abc", "qk1", 26, 126)
    assert isinstance(send, Send)
    assert send.message == {"op": "ack", "id": "c1", "event": "qk1", "box": "q19abc",
                            "share": 26, "balance": 126}  # fmt: skip
    replies = [a for a in s.failed(claim, AlreadyClaimed("again")) if isinstance(a, Send)]
    assert [(m.message["code"], m.message["id"]) for m in replies] == [("already_claimed", "c1")]
    for bad in ['{"op":"claim","id":"c2"}', '{"op":"claim","id":"c2","box":"a b"}',
                '{"op":"claim","id":"c2","box":7}']:  # fmt: skip
        assert [a.message["code"] for a in s.receive_frame(bad) if isinstance(a, Send)] == [
            "bad_request"
        ]


def test_overlays_may_not_drop_or_claim_boxes() -> None:
    s = overlay()
    s.joined()
    s.recovered()
    for frame in ['{"op":"claim","id":"c1","box":"q1"}',
                  '{"op":"box","id":"b1","coins":100,"winners":1,"opens_in_s":10}']:  # fmt: skip
        assert [a.message["code"] for a in s.receive_frame(frame) if isinstance(a, Send)] == [
            "bad_request"
        ]
