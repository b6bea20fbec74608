"""The v1 wire protocol: client messages, their validation, and frame encoding.

Pure: no sockets. A frame (text for ``gifting.json.v1``, binary for
``gifting.msgpack.v1``) is decoded straight into a typed message by msgspec,
which validates types, required fields, unknown fields and lengths in one
pass; anything else raises :class:`~gifting.core.errors.BadRequest` with a
message naming the field. A message with the same field twice is refused too:
msgspec would keep the last value, another decoder (the client's, a proxy's)
the first, and the server must not act on another message than the one meant.
Server messages are plain dicts encoded once per encoding and shared by every
connection of a room.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal

import msgspec

from gifting.core.errors import BadRequest

Encoding = Literal["gifting.json.v1", "gifting.msgpack.v1"]
JSON: Final = "gifting.json.v1"
MSGPACK: Final = "gifting.msgpack.v1"
SUBPROTOCOLS = (JSON, MSGPACK)

_ID_PATTERN = r"^[A-Za-z0-9._~@+\-/=!#$%&*^|]+\Z"
ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_ID_PATTERN)]
ItemId = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
Count = Annotated[int, msgspec.Meta(ge=1, le=10_000)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class Gift(msgspec.Struct, tag_field="op", tag="gift", forbid_unknown_fields=True):
    """``{"op":"gift","id":..,"gift":..,"count":n,"to":user?}``: send ``count`` of a gift.

    ``to``: the receiver, a current guest of the stream (absent: its host).
    """

    id: ClientId
    gift: ItemId
    count: Count = 1
    to: ClientId | None = None


class Effect(msgspec.Struct, tag_field="op", tag="effect", forbid_unknown_fields=True):
    """``{"op":"effect","id":..,"effect":..}``: buy a live-stream effect."""

    id: ClientId
    effect: ItemId


class Comment(msgspec.Struct, tag_field="op", tag="comment", forbid_unknown_fields=True):
    """``{"op":"comment","id":..,"text":..,"highlight":tier?}``: free, or paid when highlighted."""

    id: ClientId
    text: Text
    highlight: ItemId | None = None


class Ping(msgspec.Struct, tag_field="op", tag="ping", forbid_unknown_fields=True):
    """``{"op":"ping"}``: answered with ``{"op":"pong"}``."""

    id: ClientId | None = None


class Box(msgspec.Struct, tag_field="op", tag="box", forbid_unknown_fields=True):
    """``{"op":"box","id","coins":N,"winners":K,"opens_in_s":D}``: drop a treasure box.

    The ranges (N >= 100, 1 <= K <= 100, 10 <= D <= 300) are checked by
    :func:`gifting.core.boxes.price_box`, with a message naming the field.
    """

    id: ClientId
    coins: int
    winners: int
    opens_in_s: int


class Claim(msgspec.Struct, tag_field="op", tag="claim", forbid_unknown_fields=True):
    """``{"op":"claim","id","box"}``: claim a share of an open treasure box."""

    id: ClientId
    box: ClientId


ClientMessage = Gift | Effect | Comment | Ping | Box | Claim

_json_decoder = msgspec.json.Decoder(ClientMessage)
_msgpack_decoder = msgspec.msgpack.Decoder(ClientMessage)
_json_any = msgspec.json.Decoder()
_msgpack_any = msgspec.msgpack.Decoder()
_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()


def _as_bytes(raw: bytes | str) -> bytes:
    return raw.encode() if isinstance(raw, str) else raw


def _client_id_of(raw: bytes | str, encoding: Encoding) -> str | None:
    """Best effort: the ``id`` of an invalid message, so the error can echo it."""
    try:
        data = _json_any.decode(raw) if encoding == JSON else _msgpack_any.decode(_as_bytes(raw))
    except (msgspec.DecodeError, RecursionError):
        return None
    if isinstance(data, dict):
        value = data.get("id")
        if isinstance(value, str) and 0 < len(value) <= 64:
            return value
    return None


class InvalidMessage(BadRequest):
    """A frame that is not a valid client message; ``client_id`` is echoed if known."""

    def __init__(self, message: str, client_id: str | None) -> None:
        super().__init__(message)
        self.client_id = client_id


class _Duplicate(ValueError):
    """A JSON object repeats a key (raised by :func:`_pairs_without_duplicates`)."""


def _pairs_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _Duplicate(key)
        obj[key] = value
    return obj


def _msgpack_map_size(raw: bytes) -> int | None:
    """The entry count in the header of a top-level msgpack map (None: not a map)."""
    head = raw[0] if raw else 0
    if 0x80 <= head <= 0x8F:
        return head & 0x0F
    if head == 0xDE:
        return int.from_bytes(raw[1:3], "big")
    if head == 0xDF:
        return int.from_bytes(raw[1:5], "big")
    return None


def duplicate_field(raw: bytes | str, encoding: Encoding) -> str | None:
    """The field a valid client frame repeats, if any (``""`` when it is not known which).

    msgspec keeps the last of two values silently; HTTP bodies refuse a repeated
    key (gifting/api/http.py), and so must frames. A client message is one flat
    map, so only its top level can repeat: its entries are counted against the
    keys it decodes to. For JSON a comma count settles it unless a string holds
    commas, and only then are the pairs parsed (the stdlib parser, ~5 µs); for
    msgpack the map header holds the count.
    """
    if encoding == JSON:
        keys = len(_json_any.decode(raw))
        commas = raw.count(",") if isinstance(raw, str) else raw.count(b",")
        if commas < keys:
            return None  # at most ``keys`` entries: none repeated
        try:
            json.loads(raw, object_pairs_hook=_pairs_without_duplicates)
        except _Duplicate as dup:
            return str(dup)
        except ValueError:
            return None
        return None
    data = _as_bytes(raw)
    size = _msgpack_map_size(data)
    return "" if size is not None and size != len(_msgpack_any.decode(data)) else None


def decode_message(raw: bytes | str, encoding: Encoding) -> ClientMessage:
    """Decode and validate one client frame, or raise :class:`InvalidMessage`."""
    return _decode(raw, encoding)


def _decode(raw: bytes | str, encoding: Encoding) -> ClientMessage:
    try:
        if encoding == JSON:
            message: ClientMessage = _json_decoder.decode(raw)
        else:
            message = _msgpack_decoder.decode(_as_bytes(raw))
    except RecursionError:  # a deep value skipped while looking for `op`
        raise InvalidMessage("the message is nested too deeply", None) from None
    except msgspec.ValidationError as exc:
        text = str(exc)
        if "Invalid value" in text and "`$.op`" in text:
            text = "unknown op"
        elif "missing required field `op`" in text:
            text = "every message needs an op"
        raise InvalidMessage(text, _client_id_of(raw, encoding)) from None
    except msgspec.DecodeError as exc:
        kind = "JSON" if encoding == JSON else "msgpack"
        raise InvalidMessage(f"malformed {kind}: {exc}", None) from None
    repeated = duplicate_field(raw, encoding)
    if repeated is not None:
        named = f" `{repeated[:32]}`" if repeated else ""
        raise InvalidMessage(f"duplicate field{named} in the message", message.id)
    return message


def encode(message: Any, encoding: Encoding) -> bytes:
    """Encode a server message for ``encoding`` (JSON as UTF-8 bytes, or msgpack)."""
    if encoding == JSON:
        return _json_encoder.encode(message)
    return _msgpack_encoder.encode(message)


def decode_json(raw: bytes | str) -> Any:
    """Decode a JSON document we produced (room event bodies)."""
    return _json_any.decode(raw)


def error_message(code: str, message: str, client_id: str | None = None) -> dict[str, Any]:
    """The ``{"op":"error"}`` reply."""
    out: dict[str, Any] = {"op": "error", "code": code, "message": message}
    if client_id is not None:
        out["id"] = client_id
    return out


def pick_subprotocol(offered: list[str]) -> Encoding | None:
    """The encoding for a client's offered subprotocols; JSON when none is offered.

    Returns ``None`` when the client offers only subprotocols we do not speak.
    """
    if not offered:
        return JSON
    for name in offered:
        if name == JSON:
            return JSON
        if name == MSGPACK:
            return MSGPACK
    return None
