"""The v1 wire protocol: every op in both encodings, the bad-input matrix, subprotocols.

Pure and fast: frames are built here (json / msgpack) and handed to
:func:`decode_message`; nothing opens a socket.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gifting.core.errors import BadRequest
from gifting.core.protocol import (
    JSON,
    MSGPACK,
    SUBPROTOCOLS,
    ClientMessage,
    Comment,
    Effect,
    Encoding,
    Gift,
    InvalidMessage,
    Ping,
    decode_json,
    decode_message,
    encode,
    error_message,
    pick_subprotocol,
)

# No deadline: the test machine is shared, and a slow example there is load, not a
# regression.
RELAXED = settings(deadline=None)

ENCODINGS: tuple[Encoding, ...] = (JSON, MSGPACK)

# What the protocol allows an id to hold (docs/protocol.md: printable, no spaces,
# braces, colons or quotes).
ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~@+-/=!#$%&*^|"


def frame(message: object, encoding: Encoding) -> bytes | str:
    """``message`` as a client would send it: a text frame (JSON) or a binary one (msgpack)."""
    if encoding == JSON:
        return json.dumps(message)
    packed = msgpack.packb(message)
    assert isinstance(packed, bytes)
    return packed


def rejected(raw: bytes | str, encoding: Encoding) -> InvalidMessage:
    """The :class:`InvalidMessage` that decoding ``raw`` raises."""
    with pytest.raises(InvalidMessage) as info:
        decode_message(raw, encoding)
    return info.value


# --------------------------------------------------------------------------- every op


VALID: list[tuple[dict[str, Any], ClientMessage]] = [
    ({"op": "gift", "id": "c-17", "gift": "rose", "count": 1}, Gift("c-17", "rose", 1)),
    ({"op": "gift", "id": "c-17", "gift": "rose"}, Gift("c-17", "rose", 1)),  # count defaults
    ({"op": "gift", "id": "c", "gift": "lion", "count": 10_000}, Gift("c", "lion", 10_000)),
    ({"op": "effect", "id": "c-18", "effect": "confetti"}, Effect("c-18", "confetti")),
    ({"op": "comment", "id": "c-19", "text": "hi!"}, Comment("c-19", "hi!")),
    (
        {"op": "comment", "id": "c-20", "text": "pinned!", "highlight": "tier2"},
        Comment("c-20", "pinned!", "tier2"),
    ),
    ({"op": "comment", "id": "c", "text": "x", "highlight": None}, Comment("c", "x", None)),
    # 500 characters, 2,000 bytes: the limit counts characters
    ({"op": "comment", "id": "c", "text": "🌹" * 500}, Comment("c", "🌹" * 500)),
    ({"op": "ping"}, Ping()),
    ({"op": "ping", "id": "p1"}, Ping("p1")),
    ({"op": "ping", "id": None}, Ping()),
    ({"op": "gift", "id": ID_ALPHABET[:64], "gift": "r"}, Gift(ID_ALPHABET[:64], "r", 1)),
    ({"op": "gift", "id": "x" * 64, "gift": "g" * 32}, Gift("x" * 64, "g" * 32, 1)),
]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize(("message", "expected"), VALID)
def test_every_op_decodes(encoding: Encoding, message: dict[str, Any], expected: object) -> None:
    assert decode_message(frame(message, encoding), encoding) == expected


def test_json_accepts_text_and_bytes() -> None:
    text = '{"op":"gift","id":"c1","gift":"rose","count":2}'
    assert decode_message(text, JSON) == Gift("c1", "rose", 2)
    assert decode_message(text.encode(), JSON) == Gift("c1", "rose", 2)


def test_field_order_does_not_matter() -> None:
    raw = '{"count":3,"gift":"rose","id":"c1","op":"gift"}'
    assert decode_message(raw, JSON) == Gift("c1", "rose", 3)


# --------------------------------------------------------------------------- bad input

GIFT = {"op": "gift", "id": "c1", "gift": "rose"}


def _gift(**changes: object) -> dict[str, object]:
    return {**GIFT, **changes}


BAD: list[tuple[str, dict[str, Any] | list[Any] | None, str]] = [
    # counts: integers in 1..10,000 only
    ("count 0", _gift(count=0), "`int` >= 1 - at `$.count`"),
    ("count -1", _gift(count=-1), "`int` >= 1 - at `$.count`"),
    ("count 10001", _gift(count=10_001), "`int` <= 10000 - at `$.count`"),
    ("count 2^53", _gift(count=2**53), "`int` <= 10000 - at `$.count`"),
    ("count 2^53+1", _gift(count=2**53 + 1), "`int` <= 10000"),
    ("count 2^63-1", _gift(count=2**63 - 1), "`int` <= 10000"),
    ("count 2^63", _gift(count=2**63), "`int` <= 10000"),
    ("count -2^63", _gift(count=-(2**63)), "`int` >= 1"),
    ("count float", _gift(count=1.0), "Expected `int`, got `float` - at `$.count`"),
    ("count fraction", _gift(count=1.5), "got `float`"),
    ("count string", _gift(count="1"), "Expected `int`, got `str`"),
    ("count bool", _gift(count=True), "Expected `int`, got `bool`"),
    ("count null", _gift(count=None), "Expected `int`, got `"),  # `null` (JSON), `None`
    ("count array", _gift(count=[1]), "got `array`"),
    # ids and item ids: strings of a bounded length and alphabet
    ("id empty", _gift(id=""), "`str` of length >= 1 - at `$.id`"),
    ("id 65", _gift(id="a" * 65), "`str` of length <= 64 - at `$.id`"),
    ("id space", _gift(id="a b"), "matching regex"),
    ("id colon", _gift(id="a:b"), "matching regex"),
    ("id brace", _gift(id="{a}"), "matching regex"),
    ("id quote", _gift(id='a"b'), "matching regex"),
    ("id unicode", _gift(id="rosé"), "matching regex"),
    ("id int", _gift(id=17), "Expected `str`, got `int` - at `$.id`"),
    ("id null", _gift(id=None), "Expected `str`, got `"),
    ("gift 33", _gift(gift="r" * 33), "`str` of length <= 32 - at `$.gift`"),
    ("gift empty", _gift(gift=""), "`str` of length >= 1 - at `$.gift`"),
    ("gift int", _gift(gift=1), "Expected `str`, got `int` - at `$.gift`"),
    ("gift object", _gift(gift={"id": "rose"}), "got `object`"),
    ("effect 33", {"op": "effect", "id": "c", "effect": "e" * 33}, "at `$.effect`"),
    ("effect null", {"op": "effect", "id": "c", "effect": None}, "at `$.effect`"),
    ("text 501", {"op": "comment", "id": "c", "text": "x" * 501}, "length <= 500 - at `$.text`"),
    ("text empty", {"op": "comment", "id": "c", "text": ""}, "length >= 1 - at `$.text`"),
    ("text int", {"op": "comment", "id": "c", "text": 5}, "got `int` - at `$.text`"),
    ("highlight 33", {"op": "comment", "id": "c", "text": "x", "highlight": "h" * 33}, "highlight"),
    ("highlight int", {"op": "comment", "id": "c", "text": "x", "highlight": 2}, "highlight"),
    ("ping id 65", {"op": "ping", "id": "p" * 65}, "length <= 64 - at `$.id`"),
    # required fields
    ("gift no id", {"op": "gift", "gift": "rose"}, "missing required field `id`"),
    ("gift no gift", {"op": "gift", "id": "c"}, "missing required field `gift`"),
    ("effect no effect", {"op": "effect", "id": "c"}, "missing required field `effect`"),
    ("comment no text", {"op": "comment", "id": "c"}, "missing required field `text`"),
    ("effect no id", {"op": "effect", "effect": "confetti"}, "missing required field `id`"),
    # unknown fields: a typo never falls back to a default
    ("gift extra", _gift(extra=1), "unknown field `extra`"),
    ("gift counts", _gift(counts=5), "unknown field `counts`"),
    ("effect extra", {"op": "effect", "id": "c", "effect": "e", "count": 2}, "`count`"),
    ("comment extra", {"op": "comment", "id": "c", "text": "x", "tier": "t"}, "`tier`"),
    ("ping extra", {"op": "ping", "x": 1}, "unknown field `x`"),
    # ops
    ("unknown op", {"op": "nope", "id": "c"}, "unknown op"),
    ("upper-case op", {"op": "GIFT", "id": "c", "gift": "rose"}, "unknown op"),
    ("server op", {"op": "ack", "id": "c"}, "unknown op"),
    ("empty op", {"op": "", "id": "c"}, "unknown op"),
    ("no op", {"id": "c", "gift": "rose"}, "every message needs an op"),
    ("op int", {"op": 5, "id": "c"}, "at `$.op`"),
    ("op null", {"op": None, "id": "c"}, "at `$.op`"),
    # not an object at all
    ("array", ["gift", "c", "rose"], "Expected `object`, got `array`"),
    ("null", None, "Expected `object`, got `"),
]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize(
    ("message", "fragment"), [pytest.param(m, f, id=name) for name, m, f in BAD]
)
def test_bad_messages_are_rejected(encoding: Encoding, message: object, fragment: str) -> None:
    error = rejected(frame(message, encoding), encoding)
    assert isinstance(error, BadRequest)
    assert error.code == "bad_request"
    assert fragment in error.message
    assert str(error) == error.message


def test_bad_case_names_are_unique() -> None:
    names = [name for name, _, _ in BAD]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("op", ["gift", "comment", "ping"])
def test_an_id_with_a_trailing_newline_is_rejected(encoding: Encoding, op: str) -> None:
    message = {
        "gift": {"op": "gift", "id": "c1\n", "gift": "rose"},
        "comment": {"op": "comment", "id": "c1\n", "text": "hi"},
        "ping": {"op": "ping", "id": "c1\n"},
    }[op]
    assert "matching regex" in rejected(frame(message, encoding), encoding).message


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_an_invalid_message_echoes_its_id(encoding: Encoding) -> None:
    assert rejected(frame(_gift(count=0), encoding), encoding).client_id == "c1"
    assert rejected(frame({"op": "nope", "id": "c9"}, encoding), encoding).client_id == "c9"


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize(
    "bad_id", [None, 17, "", "a" * 65, ["c1"]], ids=["missing", "int", "empty", "65", "list"]
)
def test_an_unusable_id_is_not_echoed(encoding: Encoding, bad_id: object) -> None:
    message: dict[str, object] = {"op": "gift", "gift": "rose", "count": 0}
    if bad_id is not None:
        message["id"] = bad_id
    assert rejected(frame(message, encoding), encoding).client_id is None


MALFORMED_JSON = [
    "{not json",
    "",
    "{",
    '{"op":"gift","id":"c1","gift":"rose"} trailing',
    '{"op":"gift","id":"c1","gift":"rose"}{}',
    "\ufeff{}",
    '{"op":"gift","id":"c1","count":NaN}',
    b"\xff\xfe",
    b'{"op":"ping","id":"\xff"}',  # not UTF-8
]


@pytest.mark.parametrize("raw", MALFORMED_JSON)
def test_malformed_json_is_rejected(raw: bytes | str) -> None:
    error = rejected(raw, JSON)
    assert error.message.startswith("malformed JSON: ")
    assert error.client_id is None


MALFORMED_MSGPACK = [
    b"",
    b"\xc1",  # the one opcode msgpack never uses
    b"\x83\xa2op",  # truncated map
    msgpack.packb(GIFT) + b"\x00",  # trailing bytes
    b"\x81\xa2op\xd9\x02\xff\xfe",  # {"op": <str8 that is not UTF-8>}
    b"\x82\xa2op\xa4ping\xa2id\xa2\xff\xfe",  # {"op": "ping", "id": <not UTF-8>}
]


@pytest.mark.parametrize("raw", MALFORMED_MSGPACK)
def test_malformed_msgpack_is_rejected(raw: bytes) -> None:
    error = rejected(raw, MSGPACK)
    assert error.message.startswith("malformed msgpack: ")
    assert error.client_id is None


def test_msgpack_types_json_cannot_send_are_rejected() -> None:
    as_bytes = msgpack.packb({"op": "gift", "id": "c1", "gift": b"rose"})
    assert "Expected `str`, got `bytes` - at `$.gift`" in rejected(as_bytes, MSGPACK).message
    int_key = msgpack.packb({"op": "ping", 1: 2})
    assert rejected(int_key, MSGPACK).code == "bad_request"


def test_the_wrong_encoding_is_rejected() -> None:
    assert rejected(frame(GIFT, MSGPACK), JSON).message.startswith("malformed JSON")
    assert rejected(frame(GIFT, JSON), MSGPACK).code == "bad_request"


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_duplicate_op_is_rejected(encoding: Encoding) -> None:
    # A second op must not switch the message to another kind after validation began.
    raw = (
        '{"op":"gift","id":"c1","gift":"rose","op":"effect"}'
        if encoding == JSON
        else b"\x84\xa2op\xa4gift\xa2id\xa2c1\xa4gift\xa4rose\xa2op\xa6effect"
    )
    assert rejected(raw, encoding).code == "bad_request"


DUPLICATES = [
    ({"op": "gift", "id": "c1"}, [("gift", "rose"), ("gift", "universe")]),
    ({"op": "gift", "id": "c1", "gift": "rose"}, [("count", 1), ("count", 1000)]),
    ({"op": "comment", "text": "hi"}, [("id", "c1"), ("id", "c2")]),
    ({"op": "comment", "id": "c1"}, [("text", "a"), ("text", "b")]),
    ({"op": "ping"}, [("id", "p1"), ("id", "p1")]),  # the same value twice, too
]


def _with_pairs(head: dict[str, Any], pairs: list[tuple[str, Any]], encoding: Encoding) -> Any:
    items = [*head.items(), *pairs]
    if encoding == JSON:
        return "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in items) + "}"
    out = bytes([0x80 | len(items)])
    for k, v in items:
        out += msgpack.packb(k) + msgpack.packb(v)
    return out


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize(("head", "pairs"), DUPLICATES)
def test_a_duplicate_field_is_rejected(
    encoding: Encoding, head: dict[str, Any], pairs: list[tuple[str, Any]]
) -> None:
    # As on HTTP: which of two values counts is up to the parser, so neither does.
    err = rejected(_with_pairs(head, pairs, encoding), encoding)
    assert err.code == "bad_request" and "duplicate field" in err.message, err.message
    assert decode_message(_with_pairs(head, pairs[:1], encoding), encoding)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_map16_with_a_field_twice_is_rejected(encoding: Encoding) -> None:
    if encoding == MSGPACK:
        pairs = [("op", "ping"), ("id", "p1"), ("id", "p2")]
        raw = b"\xde\x00\x03" + b"".join(msgpack.packb(k) + msgpack.packb(v) for k, v in pairs)
        assert "duplicate field" in rejected(raw, MSGPACK).message
        assert decode_message(b"\xde\x00\x02\xa2op\xa4ping\xa2id\xa2p1", MSGPACK) == Ping("p1")
    else:
        escaped = '{"op":"gift","id":"c1","gift":"rose","gi\\u0066t":"lion"}'
        assert "duplicate field" in rejected(escaped, JSON).message


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_deep_nesting_is_a_bad_request_not_an_internal_error(encoding: Encoding) -> None:
    """Within the frame limit, 8,000 levels overflow the decoder's recursion limit."""
    deep = ("[" * 8000 + "]" * 8000) if encoding == JSON else b"\x91" * 8000 + b"\xc0"
    inside = (
        '{"op":"gift","id":"c1","x":' + "[" * 8000 + "]" * 8000 + "}"
        if encoding == JSON
        else b"\x83\xa2op\xa4gift\xa2id\xa2c1\xa1x" + b"\x91" * 8000 + b"\xc0"
    )
    before_op = (  # skipped while looking for the tag
        '{"count":' + "[" * 8000 + "]" * 8000 + ',"op":"gift","id":"c1","gift":"rose"}'
        if encoding == JSON
        else b"\x84\xa5count" + b"\x91" * 8000 + b"\xc0\xa2op\xa4gift\xa2id\xa2c1\xa4gift\xa4rose"
    )
    for raw in (deep, inside, before_op):
        assert rejected(raw, encoding).code == "bad_request"


@pytest.mark.parametrize("encoding", ENCODINGS)
@RELAXED
@given(count=st.integers(min_value=-(2**63), max_value=2**64 - 1))
def test_counts_outside_1_to_10000_are_rejected(encoding: Encoding, count: int) -> None:
    raw = frame(_gift(count=count), encoding)
    if 1 <= count <= 10_000:
        assert decode_message(raw, encoding) == Gift("c1", "rose", count)
    else:
        assert rejected(raw, encoding).client_id == "c1"


def outcome(raw: bytes | str, encoding: Encoding) -> object:
    """The decoded message, or the :class:`InvalidMessage` raised (any other error escapes)."""
    try:
        return decode_message(raw, encoding)
    except InvalidMessage as error:
        return error


OUTCOMES = (Gift, Effect, Comment, Ping, InvalidMessage)


@RELAXED
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_as_another_error(raw: bytes) -> None:
    for encoding in ENCODINGS:
        assert isinstance(outcome(raw, encoding), OUTCOMES)


SMALL_TEXT = st.text(max_size=8) | st.text(alphabet=ID_ALPHABET, max_size=70)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | SMALL_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SMALL_TEXT, inner, max_size=3),
    max_leaves=6,
)


@RELAXED
@given(
    op=st.sampled_from(["gift", "effect", "comment", "ping", "nope"]),
    fields=st.dictionaries(
        st.sampled_from(["id", "gift", "effect", "text", "highlight", "count", "x"]),
        JSON_VALUES,
        max_size=5,
    ),
)
def test_arbitrary_documents_decode_or_raise_bad_request(op: str, fields: dict[str, Any]) -> None:
    for encoding in ENCODINGS:
        assert isinstance(outcome(frame({"op": op, **fields}, encoding), encoding), OUTCOMES)


# --------------------------------------------------------------------------- round trips

CLIENT_IDS = st.text(alphabet=ID_ALPHABET, min_size=1, max_size=64)
ITEM_IDS = st.text(min_size=1, max_size=32)
TEXTS = st.text(min_size=1, max_size=500)
MESSAGES = st.one_of(
    st.builds(Gift, id=CLIENT_IDS, gift=ITEM_IDS, count=st.integers(1, 10_000)),
    st.builds(Effect, id=CLIENT_IDS, effect=ITEM_IDS),
    st.builds(Comment, id=CLIENT_IDS, text=TEXTS, highlight=st.none() | ITEM_IDS),
    st.builds(Ping, id=st.none() | CLIENT_IDS),
)


@RELAXED
@given(message=MESSAGES)
def test_encode_then_decode_is_the_identity(message: ClientMessage) -> None:
    for encoding in ENCODINGS:
        assert decode_message(encode(message, encoding), encoding) == message


@RELAXED
@given(message=MESSAGES)
def test_our_encoding_is_what_a_client_library_sends(message: ClientMessage) -> None:
    # The frame of a message is the plain map of its fields with its op.
    as_json = json.loads(encode(message, JSON))
    assert msgpack.unpackb(encode(message, MSGPACK)) == as_json
    assert decode_message(json.dumps(as_json), JSON) == message
    assert (
        as_json["op"]
        == {Gift: "gift", Effect: "effect", Comment: "comment", Ping: "ping"}[type(message)]
    )


SERVER_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@RELAXED
@given(body=st.dictionaries(st.text(), SERVER_VALUES, max_size=6))
def test_server_messages_encode_in_both_encodings(body: dict[str, Any]) -> None:
    assert json.loads(encode(body, JSON)) == body
    assert msgpack.unpackb(encode(body, MSGPACK), strict_map_key=False) == body
    assert decode_json(encode(body, JSON)) == body


def test_encode_returns_utf8_json_bytes() -> None:
    out = encode({"op": "event", "text": "🌹 é", "coins": 2**53}, JSON)
    assert isinstance(out, bytes)
    assert json.loads(out.decode("utf-8")) == {"op": "event", "text": "🌹 é", "coins": 2**53}


def test_decode_json_reads_text_and_bytes() -> None:
    assert decode_json('{"seq":1}') == decode_json(b'{"seq":1}') == {"seq": 1}


# --------------------------------------------------------------------------- replies


def test_error_message_shape() -> None:
    assert error_message("bad_request", "count must be at least 1") == {
        "op": "error",
        "code": "bad_request",
        "message": "count must be at least 1",
    }
    assert error_message("conflict", "id reused", "c-17") == {
        "op": "error",
        "code": "conflict",
        "message": "id reused",
        "id": "c-17",
    }


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_error_message_of_an_invalid_frame_round_trips(encoding: Encoding) -> None:
    error = rejected(frame(_gift(count=0), encoding), encoding)
    reply = error_message(error.code, error.message, error.client_id)
    wire = encode(reply, encoding)
    back = json.loads(wire) if encoding == JSON else msgpack.unpackb(wire)
    assert back == {"op": "error", "code": "bad_request", "message": error.message, "id": "c1"}


def test_error_message_is_a_fresh_dict() -> None:
    first = error_message("bad_request", "m")
    first["id"] = "x"
    assert "id" not in error_message("bad_request", "m")


# --------------------------------------------------------------------------- subprotocols


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ([], JSON),  # a client that offers none speaks JSON
        ([JSON], JSON),
        ([MSGPACK], MSGPACK),
        ([MSGPACK, JSON], MSGPACK),  # the client's order of preference wins
        ([JSON, MSGPACK], JSON),
        (["chat", MSGPACK], MSGPACK),
        (["chat", "superchat"], None),
        (["gifting.json.v2"], None),
        (["GIFTING.JSON.V1"], None),  # RFC 6455 subprotocol names are case-sensitive
        ([""], None),
    ],
)
def test_pick_subprotocol(offered: list[str], chosen: Encoding | None) -> None:
    assert pick_subprotocol(offered) == chosen


def test_subprotocol_names() -> None:
    assert SUBPROTOCOLS == ("gifting.json.v1", "gifting.msgpack.v1")


@RELAXED
@given(offered=st.lists(st.text(max_size=20), max_size=5))
def test_pick_subprotocol_picks_the_first_we_speak(offered: list[str]) -> None:
    ours = [name for name in offered if name in SUBPROTOCOLS]
    expected = JSON if not offered else (ours[0] if ours else None)
    assert pick_subprotocol(offered) == expected
