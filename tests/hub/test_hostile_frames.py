"""Every client frame, both encodings, through a live hub (docs/contract.md §3.6).

Hypothesis writes the frames — random text and bytes, random JSON and msgpack
documents, and near-valid messages with one field mutated (wrong types,
0, -1, 2^53, 2^63, 2^64, huge or control-character strings, deep nesting,
huge arrays, duplicate keys, unknown ops and fields) — and sends them to a
real uvicorn over real sockets, to viewers and overlays alike. Each frame
must get exactly one ``error`` reply that echoes the client's id when it had a
valid one (or the protocol's answer to a valid ping), the connection must
stay usable (a ping right after it is answered), every Redis key of the test
must be what it was, and the server must log no error. Frames of the wrong
type, over the size limit or not UTF-8 get their documented close code.

Whether a frame is valid is decided here from docs/protocol.md, independently
of gifting.core.protocol (whose own pure tests are tests/core/test_protocol.py):
a frame this file calls invalid that the server acts on is a defect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
import pytest_asyncio
import websockets
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gifting.core.catalog import Catalog
from tests.api.api_support import snapshot
from tests.hostile import (
    EDGE_INTS,
    ServerLog,
    deep_json,
    deep_msgpack,
    hostile_text,
    json_documents,
    server_log,
)
from tests.hub.conftest import HubServer, decode, encode, recv, serve

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --------------------------------------------------------------------------- the protocol, restated

ID = re.compile(r"[A-Za-z0-9._~@+\-/=!#$%&*^|]{1,64}")
FIELDS = {
    "gift": {"op", "id", "gift", "count"},
    "effect": {"op", "id", "effect"},
    "comment": {"op", "id", "text", "highlight"},
    "ping": {"op", "id"},
}
REQUIRED = {
    "gift": {"id", "gift"},
    "effect": {"id", "effect"},
    "comment": {"id", "text"},
    "ping": set(),
}


class _Duplicate(Exception):
    """A JSON object or msgpack map with the same key twice."""


def _pairs(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len({json.dumps(k, sort_keys=True, default=repr) for k in keys}):
        raise _Duplicate
    return dict(
        (k if isinstance(k, str | int | float | bool | None | bytes) else repr(k), v)
        for k, v in pairs
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


def parse(raw: str | bytes, msgpack_encoded: bool) -> tuple[Any, bool]:
    """``(document, ok)``; a duplicate key anywhere makes the frame unparseable here."""
    try:
        if msgpack_encoded:
            assert isinstance(raw, bytes)
            doc = msgpack.unpackb(raw, raw=False, strict_map_key=False, object_pairs_hook=_pairs)
        else:
            assert isinstance(raw, str)
            doc = json.loads(raw, object_pairs_hook=_pairs, parse_constant=_refuse_constant)
    except (_Duplicate, ValueError, TypeError, RecursionError, msgpack.ExtraData,
            msgpack.FormatError, msgpack.StackError):  # fmt: skip
        return None, False
    return doc, _all_utf8(doc)


def _all_utf8(doc: Any) -> bool:
    """Whether every string of ``doc`` is UTF-8 (JSON's ``"\\ud800"`` escapes are not)."""
    todo = [doc]
    while todo:
        value = todo.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(value, list):
            todo.extend(value)
        elif isinstance(value, dict):
            todo.extend(value.keys())
            todo.extend(value.values())
    return True


def _depth(doc: Any) -> int:
    """How deeply ``doc`` nests arrays and maps."""
    deepest, todo = 0, [(doc, 0)]
    while todo:
        value, depth = todo.pop()
        deepest = max(deepest, depth)
        if isinstance(value, list):
            todo.extend((v, depth + 1) for v in value)
        elif isinstance(value, dict):
            todo.extend((v, depth + 1) for v in value.values())
    return deepest


#: A frame nested deeper than this may be too deep for the server to find its id in
#: (the id is echoed on a best-effort second read, bounded by the decoder's recursion limit).
ECHO_DEPTH = 100


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_text(value: object, lo: int, hi: int) -> bool:
    if not isinstance(value, str) or not lo <= len(value) <= hi:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def well_formed(doc: Any) -> bool:
    """Whether ``doc`` is a client message of docs/protocol.md (fields, types, ranges)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("op"), str) or doc["op"] not in FIELDS:
        return False
    op = doc["op"]
    if not set(doc) <= FIELDS[op] or not REQUIRED[op] <= set(doc):
        return False
    ok_id = isinstance(doc.get("id"), str) and bool(ID.fullmatch(doc["id"]))
    if op == "ping":
        return doc.get("id") is None or ok_id
    checks = [ok_id]
    if op == "gift":
        count = doc.get("count", 1)
        checks += [_is_text(doc["gift"], 1, 32), _is_int(count) and 1 <= count <= 10_000]
    elif op == "effect":
        checks.append(_is_text(doc["effect"], 1, 32))
    else:
        tier = doc.get("highlight")
        checks += [_is_text(doc["text"], 1, 500), tier is None or _is_text(tier, 1, 32)]
    return all(checks)


def acted_on(doc: dict[str, Any], catalog: Catalog) -> bool:
    """Whether the server would spend or post this well-formed message (known item, count
    within the catalog's, a comment it accepts): such frames are not bad input."""
    op = doc["op"]
    if op == "gift":
        return doc["gift"] in catalog.gifts and doc.get("count", 1) <= catalog.max_count
    if op == "effect":
        return doc["effect"] in catalog.effects
    text: str = doc["text"]
    text_ok = bool(text.strip()) and not any(ord(c) < 32 and c not in "\n\t" for c in text)
    tier = doc.get("highlight")
    if tier is None:
        return text_ok
    highlight = catalog.highlights.get(tier)
    return highlight is not None and text_ok and len(text) <= highlight.max_length


@dataclass(frozen=True)
class Expected:
    """What the server must answer a frame with (no close)."""

    pong: bool = False  # a valid ping: the pong
    codes: frozenset[str] = frozenset({"bad_request"})
    echo: str | None = None  # the id the error must carry
    check_echo: bool = True  # False when the frame's id is ambiguous (a duplicate key)


def expected(raw: str | bytes, msgpack_encoded: bool, overlay: bool, catalog: Catalog) -> Expected:
    """The answer docs/protocol.md gives ``raw``; ``assume`` away frames the server acts on."""
    doc, parsed = parse(raw, msgpack_encoded)
    if not parsed:
        return Expected(check_echo=False)
    plain = isinstance(doc, dict)
    client_id = doc.get("id") if plain else None
    echo = client_id if isinstance(client_id, str) and ID.fullmatch(client_id) else None
    if not well_formed(doc):
        return Expected(echo=echo, check_echo=_depth(doc) <= ECHO_DEPTH)
    if doc["op"] == "ping":
        return Expected(pong=True)
    if overlay:
        return Expected(echo=echo)  # overlays only listen (and ping)
    assume(not acted_on(doc, catalog))
    return Expected(codes=frozenset({"bad_request", "unknown_item"}), echo=echo)


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True)
class Raw:
    """A value given as its encoded text (JSON) and bytes (msgpack): what encoders refuse."""

    json: str
    msgpack: bytes


def _pack(value: Any) -> bytes:
    if isinstance(value, Raw):
        return value.msgpack
    packed = msgpack.packb(value, use_bin_type=True)
    assert isinstance(packed, bytes)
    return packed


def _map_header(n: int) -> bytes:
    return bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)


def encode_pairs(
    pairs: list[tuple[Any, Any]], msgpack_encoded: bool, ascii_only: bool
) -> str | bytes:
    """An object of ``pairs`` in order, duplicates kept (encoders would merge them)."""
    if msgpack_encoded:
        return _map_header(len(pairs)) + b"".join(_pack(k) + _pack(v) for k, v in pairs)
    items = (
        json.dumps(k, ensure_ascii=ascii_only) + ":"
        + (v.json if isinstance(v, Raw) else json.dumps(v, ensure_ascii=ascii_only))
        for k, v in pairs
    )  # fmt: skip
    return "{" + ",".join(items) + "}"


def encode_value(value: Any, msgpack_encoded: bool, ascii_only: bool) -> str | bytes:
    if msgpack_encoded:
        return _pack(value)
    return value.json if isinstance(value, Raw) else json.dumps(value, ensure_ascii=ascii_only)


def _encodable(value: Any) -> bool:
    """msgpack has no integers past 64 bits; JSON refuses NaN and infinities (we never send
    them from here: the oracle above parses them as errors anyway)."""
    if isinstance(value, Raw):
        return True
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**64
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_encodable(v) for v in value)
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    return True


TEMPLATES: dict[str, dict[str, Any]] = {
    "gift": {"op": "gift", "id": "c-17", "gift": "rose", "count": 1},
    "effect": {"op": "effect", "id": "c-18", "effect": "confetti"},
    "comment": {"op": "comment", "id": "c-19", "text": "hi!", "highlight": "tier1"},
    "free comment": {"op": "comment", "id": "c-20", "text": "hi!"},
    "ping": {"op": "ping", "id": "p-1"},
}
#: Values that are valid for their field: a duplicate key with one of these is the
#: parser-differential attack (which of the two does the server act on?).
PLAUSIBLE: dict[str, list[Any]] = {
    "op": ["gift", "effect", "comment", "ping"],
    "id": ["c-99", "x"],
    "gift": ["doughnut", "rose", "lion"],
    "count": [2, 1000],
    "effect": ["confetti", "fireworks"],
    "text": ["other", "x"],
    "highlight": ["tier2", None],
}

#: Field names a forger might add: real ones of other ops, who-pays fields, case variants.
EXTRA_NAMES = [*sorted(PLAUSIBLE), "sender", "user", "coins", "stream", "Op", "ID"]

big_values: st.SearchStrategy[Any] = st.one_of(
    st.integers(10, 3000).map(lambda n: Raw(deep_json(n), deep_msgpack(n))),
    st.integers(100, 3000).map(lambda n: [0] * n),
    st.integers(100, 600).map(lambda n: {f"k{i}": i for i in range(n)}),
    st.integers(501, 12_000).map(lambda n: "t" * n),
)

field_values: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(EDGE_INTS),
    st.integers(-5, 10_005),
    hostile_text(),
    json_documents,
    big_values,
    st.sampled_from([v for vs in PLAUSIBLE.values() for v in vs]),
)


@st.composite
def near_valid(draw: st.DrawFn) -> list[tuple[Any, Any]]:
    """A valid message with one or two mutations, as ordered pairs (duplicates possible)."""
    pairs = list(TEMPLATES[draw(st.sampled_from(sorted(TEMPLATES)))].items())
    for _ in range(draw(st.integers(1, 2))):
        names = [k for k, _ in pairs]
        kind = draw(st.sampled_from(["set", "set", "drop", "add", "duplicate", "rename"]))
        if kind == "set" and pairs:
            i = draw(st.integers(0, len(pairs) - 1))
            pairs[i] = (pairs[i][0], draw(field_values))
        elif kind == "drop" and pairs:
            pairs.pop(draw(st.integers(0, len(pairs) - 1)))
        elif kind == "add":
            name = draw(st.one_of(st.sampled_from(EXTRA_NAMES), hostile_text(12)))
            pairs.insert(draw(st.integers(0, len(pairs))), (name, draw(field_values)))
        elif kind == "duplicate" and names:
            name = draw(st.sampled_from(names))
            value = draw(st.one_of(st.sampled_from(PLAUSIBLE.get(name, [1])), field_values))
            pairs.insert(draw(st.integers(0, len(pairs))), (name, value))
        elif kind == "rename" and pairs:
            i = draw(st.integers(0, len(pairs) - 1))
            pairs[i] = (draw(st.sampled_from([n.upper() for n in names] + [" op", "id "])),
                        pairs[i][1])  # fmt: skip
    return pairs


MALFORMED_JSON = [
    "", " ", "{", "}", "[]", "null", "0", '"gift"', "{}{}", '{"op":"ping"} x', "\ufeff{}",
    '{"op":"ping","id":NaN}', '{"op":"gift","id":"c","gift":"rose","count":Infinity}',
    '{"op":"gift","id":"c","gift":"rose","count":1e2}', '{"op":"gift","id":"c","gift":"rose",}',
    "{'op':'ping'}", '{"op":"ping"', '{"op":"gift","id":"c","gift":"\\ud800"}',
    '{"op":"comment","id":"c","text":"\\udc00"}', "\x00", '{"op":"ping","id":"p"}\x00',
    '{"op":"gift","id":"c","gift":"rose","count":' + "9" * 5000 + "}",
]  # fmt: skip


class Frame:
    """A frame, shown short in Hypothesis' reports."""

    def __init__(self, raw: str | bytes) -> None:
        self.raw = raw

    @property
    def size(self) -> int:
        return len(self.raw if isinstance(self.raw, bytes) else self.raw.encode())

    def __repr__(self) -> str:
        return f"Frame({self.raw!r:.300}{'…' if len(self.raw) > 280 else ''}, {self.size} bytes)"


@st.composite
def frames(draw: st.DrawFn, msgpack_encoded: bool) -> Frame:
    """Any frame of the connection's type (noise, documents, near-valid messages)."""
    return Frame(draw(_frames(msgpack_encoded)))


@st.composite
def _frames(draw: st.DrawFn, msgpack_encoded: bool) -> str | bytes:
    ascii_only = draw(st.booleans())
    choice = draw(st.sampled_from(["noise", "document", "near", "near", "near", "malformed"]))
    if choice == "noise":
        return draw(st.binary(max_size=300)) if msgpack_encoded else draw(st.text(max_size=300))
    if choice == "malformed":
        if msgpack_encoded:
            good = _pack(TEMPLATES["gift"])
            return draw(st.sampled_from([
                b"", b"\xc1", good[:-1], good + b"\x00", good + good, b"\x90", b"\x80",
                b"\xdf\xff\xff\xff\xff", b"\xdd\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff",
                b"\xc7\x01\x05x", b"\xd6\xff\x00\x00\x00\x00",
                b"\x81\xa2op\xd9\x02\xff\xfe",
            ]))  # fmt: skip
        return draw(st.sampled_from(MALFORMED_JSON))
    if choice == "document":
        value = draw(json_documents.filter(_encodable))
        return encode_value(value, msgpack_encoded, ascii_only)
    pairs = draw(near_valid())
    assume(all(_encodable(k) and _encodable(v) for k, v in pairs))
    return encode_pairs(pairs, msgpack_encoded, ascii_only)


# --------------------------------------------------------------------------- a connection kept open


#: How long to keep listening after the pong: long enough for a spend the server wrongly
#: took to be acked (one Redis round trip on this machine).
SETTLE_S = 0.01


class Probe:
    """One viewer or overlay connection, reopened whenever a frame closed it."""

    def __init__(self, hub: HubServer, stream: str, key: str, overlay: bool, mp: bool) -> None:
        self.hub, self.stream, self.key = hub, stream, key
        self.overlay, self.msgpack = overlay, mp
        self.ws: Any = None
        self.sent = 0

    async def connection(self) -> Any:
        if self.ws is None:
            if self.overlay:
                self.ws = await self.hub.overlay(self.stream, self.key, msgpack=self.msgpack)
                assert (await recv(self.ws))["op"] == "snapshot"
            else:
                self.ws = await self.hub.viewer(self.stream, "mallory", msgpack=self.msgpack)
        return self.ws

    async def exchange(self, frame: str | bytes) -> tuple[list[dict[str, Any]], Any]:
        """Send ``frame`` then a ping; return the replies but the pong (those that came
        before it, and for a moment after: a spend's ack would come late), and the close
        frame the server sent if it closed instead."""
        ws = await self.connection()
        self.sent += 1
        sync = f"sync-{self.sent}"
        replies: list[dict[str, Any]] = []
        try:
            await ws.send(frame)
            await ws.send(encode({"op": "ping", "id": sync}, self.msgpack))
            ponged = False
            async with asyncio.timeout(10):
                while not ponged:
                    msg = decode(await ws.recv())
                    ponged = msg == {"op": "pong", "id": sync}
                    if not ponged and msg["op"] not in ("batch", "event"):
                        replies.append(msg)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SETTLE_S):
                    while True:
                        msg = decode(await ws.recv())
                        if msg["op"] not in ("batch", "event"):
                            replies.append(msg)
        except websockets.ConnectionClosed as closed:
            self.ws = None
            return replies, closed.rcvd
        return replies, None

    async def aclose(self) -> None:
        if self.ws is not None:
            await self.ws.close()


class Target:
    """A hub with a live stream, a funded viewer, its connections and a log capture."""

    def __init__(self, hub: HubServer, stream: str, key: str, log: ServerLog) -> None:
        self.hub, self.stream, self.key, self.log = hub, stream, key, log
        self.probes: dict[tuple[bool, bool], Probe] = {}

    def __repr__(self) -> str:
        return f"Target(stream={self.stream!r})"

    async def state(self) -> dict[bytes, object]:
        """Every Redis key of the test, with its value."""
        return await snapshot(self.hub.state.redis, self.hub.state.keys.prefix)

    def probe(self, overlay: bool, mp: bool) -> Probe:
        return self.probes.setdefault(
            (overlay, mp), Probe(self.hub, self.stream, self.key, overlay, mp)
        )

    async def unchanged(self, before: dict[bytes, object]) -> None:
        after = await self.state()
        changed = sorted(k.decode() for k in before.keys() | after.keys()
                         if before.get(k) != after.get(k))  # fmt: skip
        assert not changed, f"a refused frame changed Redis: {changed}"
        assert not self.log.take(), "the server logged an error"

    async def aclose(self) -> None:
        for probe in self.probes.values():
            await probe.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def target(hub: HubServer) -> AsyncIterator[Target]:
    stream, key = await hub.stream()
    await hub.fund("mallory", "coins_17500")
    with server_log() as log:
        t = Target(hub, stream, key, log)
        try:
            yield t
        finally:
            await t.aclose()


async def _check(target: Target, drawn: Frame, overlay: bool, mp: bool) -> None:
    assume(drawn.size <= target.hub.state.settings.max_frame_bytes)  # over it: tested below
    frame = drawn.raw
    want = expected(frame, mp, overlay, target.hub.state.catalog)
    before = await target.state()
    replies, closed = await target.probe(overlay, mp).exchange(frame)
    assert closed is None, f"closed {closed}"
    assert len(replies) == 1, replies
    [reply] = replies
    if want.pong:
        assert reply["op"] == "pong", reply
    else:
        assert reply["op"] == "error", reply
        assert reply["code"] in want.codes, reply
        assert isinstance(reply["message"], str) and reply["message"], reply
        if want.echo is not None and want.check_echo:
            assert reply.get("id") == want.echo, reply
        elif "id" in reply:
            assert isinstance(reply["id"], str) and 0 < len(reply["id"]) <= 64, reply
    await target.unchanged(before)


@FUZZ
@given(data=st.data())
async def test_any_json_frame_to_a_viewer_is_refused_and_changes_nothing(
    target: Target, data: st.DataObject
) -> None:
    await _check(target, data.draw(frames(msgpack_encoded=False)), overlay=False, mp=False)


@FUZZ
@given(data=st.data())
async def test_any_msgpack_frame_to_a_viewer_is_refused_and_changes_nothing(
    target: Target, data: st.DataObject
) -> None:
    await _check(target, data.draw(frames(msgpack_encoded=True)), overlay=False, mp=True)


@settings(FUZZ, max_examples=60)
@given(data=st.data(), mp=st.booleans())
async def test_any_frame_to_an_overlay_is_refused_and_changes_nothing(
    target: Target, data: st.DataObject, mp: bool
) -> None:
    await _check(target, data.draw(frames(msgpack_encoded=mp)), overlay=True, mp=mp)


# --------------------------------------------------------------------------- frames that close


async def _closed_with(target: Target, probe: Probe, frame: Any, code: int, error: bool) -> None:
    before = await target.state()
    replies, closed = await probe.exchange(frame)
    assert closed is not None and closed.code == code, (closed, replies)
    if error:
        assert [r["code"] for r in replies] == ["bad_request"], replies
        assert "wrong frame type" in replies[0]["message"]
    else:
        assert replies == []
    await target.unchanged(before)


@settings(FUZZ, max_examples=30)
@given(data=st.data(), overlay=st.booleans(), mp=st.booleans())
async def test_a_frame_of_the_wrong_type_is_refused_and_closed_1003(
    target: Target, data: st.DataObject, overlay: bool, mp: bool
) -> None:
    """Text on a msgpack connection, binary on a JSON one, whatever it holds (even a valid
    message of the other encoding)."""
    frame = data.draw(frames(msgpack_encoded=not mp)).raw
    if data.draw(st.booleans()):
        frame = encode(TEMPLATES["gift"], not mp)  # a valid spend, in the other encoding
    # Over the limit in bytes (a text frame's UTF-8, not its characters): 1009, tested below.
    size = len(frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else frame)
    assume(size <= target.hub.state.settings.max_frame_bytes)
    await _closed_with(target, target.probe(overlay, mp), frame, 1003, error=True)


@pytest.mark.parametrize(
    "payload",
    [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b'{"op":"ping","id":"\xe2\x82"}', b"\xf4\x90\x80\x80"],
    ids=["0xff", "overlong", "surrogate", "truncated", "above U+10FFFF"],
)
@pytest.mark.parametrize("overlay", [False, True], ids=["viewer", "overlay"])
async def test_a_text_frame_that_is_not_utf8_is_closed_1007(
    target: Target, payload: bytes, overlay: bool
) -> None:
    probe = target.probe(overlay, False)
    ws = await probe.connection()
    before = await target.state()
    await ws.send(payload, text=True)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    probe.ws = None
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    await asyncio.sleep(0.05)  # the server's log lines, if any
    await target.unchanged(before)


# --------------------------------------------------------------------------- the size limit

LIMIT = 1024


@pytest_asyncio.fixture(loop_scope="session")
async def small_target(redis_url: str, database_url: str, key_prefix: str) -> AsyncIterator[Target]:
    # One user reconnects after every close: a closed connection may still hold its slot
    # for a moment, so the per-user cap is lifted (the caps have tests of their own).
    async with serve(
        redis_url, database_url, key_prefix, GIFTING_MAX_FRAME_BYTES=LIMIT,
        GIFTING_MAX_CONNECTIONS_PER_USER=10_000, GIFTING_MAX_CONNECTIONS_PER_ADDRESS=100_000,
    ) as hub:  # fmt: skip
        stream, key = await hub.stream()
        await hub.fund("mallory", "coins_17500")
        with server_log() as log:
            t = Target(hub, stream, key, log)
            try:
                yield t
            finally:
                await t.aclose()


def _padded(size: int, mp: bool, make: Callable[[str], dict[str, Any]]) -> str | bytes:
    """``make(text)`` encoded in ``size`` bytes at least (ASCII padding; msgpack's string
    header may add a byte or two)."""
    bare = encode(make(""), mp)
    return encode(make("x" * (size - len(bare if isinstance(bare, bytes) else bare.encode()))), mp)


def _size(frame: str | bytes) -> int:
    return len(frame if isinstance(frame, bytes) else frame.encode())


@settings(FUZZ, max_examples=30)
@given(size=st.integers(LIMIT + 1, 256 * 1024), overlay=st.booleans(), mp=st.booleans(),
       kind=st.sampled_from(["spend", "noise"]))  # fmt: skip
async def test_a_frame_over_the_size_limit_is_closed_1009(
    small_target: Target, size: int, overlay: bool, mp: bool, kind: str
) -> None:
    """Even a valid spend, padded past the limit, is refused before anything reads it."""
    if kind == "spend":
        frame = _padded(size, mp, lambda t: {"op": "comment", "id": "big", "text": t,
                                             "highlight": "tier1"})  # fmt: skip
    else:
        frame = b"\x00" * size if mp else "{" * size
    await _closed_with(small_target, small_target.probe(overlay, mp), frame, 1009, error=False)


@pytest.mark.parametrize("mp", [False, True], ids=["json", "msgpack"])
async def test_a_frame_of_exactly_the_size_limit_is_read(small_target: Target, mp: bool) -> None:
    frame = next(f for n in range(LIMIT) if _size(f := encode(
        {"op": "ping", "id": "p", "pad": "x" * n}, mp)) == LIMIT)  # fmt: skip
    before = await small_target.state()
    replies, closed = await small_target.probe(False, mp).exchange(frame)
    assert closed is None
    assert [r["code"] for r in replies] == ["bad_request"]  # read, and refused: `pad` is unknown
    assert replies[0]["id"] == "p"
    await small_target.unchanged(before)
