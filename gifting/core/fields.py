"""Strict reads of a flat string map (an outbox entry): each failure names its field.

Pure. Redis hands stream entries back as bytes; :func:`decode_fields` makes
them str, and :class:`FieldReader` reads one typed value at a time (an id, an
int64, an ISO currency code, bounded text), raising :class:`MalformedEntry`
with a reason the persister's dead letters keep.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from gifting.core.errors import BadRequest
from gifting.core.ids import ID_PATTERN, check_id

INT64_MAX: Final = 2**63 - 1
MAX_TEXT: Final = 4096
_INT = re.compile(r"-?[0-9]{1,19}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_ID = re.compile(ID_PATTERN)  # what check_id accepts (1..64 characters)

#: An entry as Redis returns it (bytes) or as tests and the hub hold it (str).
RawFields = Mapping[bytes, bytes] | Mapping[str, str]


class MalformedEntry(ValueError):
    """An outbox entry that cannot be parsed; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def decode_fields(fields: RawFields) -> dict[str, str]:
    """``fields`` with names and values as str (UTF-8), or raise ``MalformedEntry``.

    Fast paths for a ``dict`` of bytes (as Redis returns it) and of str.
    """
    try:
        if type(fields) is dict:
            # Redis hands back bytes only: decode without a per-item isinstance.
            try:
                return {k.decode(): v.decode() for k, v in fields.items()}
            except AttributeError:
                if all(type(k) is str and type(v) is str for k, v in fields.items()):
                    return dict(fields)
        return {_text(k): _text(v) for k, v in fields.items()}
    except UnicodeDecodeError:
        raise MalformedEntry("a field is not valid UTF-8") from None


class FieldReader:
    """Typed access to one entry's fields; every failure is a ``MalformedEntry``."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        if "\x00" in "".join(fields) or "\x00" in "".join(fields.values()):
            raise MalformedEntry("a field holds a NUL character")
        self.fields = fields

    def text(self, name: str, *, allow_empty: bool = True) -> str:
        """The field ``name``: present, at most ``MAX_TEXT`` characters."""
        value = self.fields.get(name)
        if value is None:
            raise MalformedEntry(f"missing field {name!r}")
        if not allow_empty and not value:
            raise MalformedEntry(f"empty field {name!r}")
        if len(value) > MAX_TEXT:
            raise MalformedEntry(f"field {name!r} is longer than {MAX_TEXT} characters")
        return value

    def ident(self, name: str) -> str:
        """The field ``name``: an id (``gifting.core.ids.check_id``)."""
        value = self.fields.get(name)
        if value is not None and _ID.match(value):  # the fast path: exactly check_id's rule
            return value
        value = self.text(name)
        try:
            return check_id(value, name)
        except BadRequest as exc:
            raise MalformedEntry(f"field {name!r}: {exc.message}") from None

    def integer(self, name: str, lo: int = -INT64_MAX, hi: int = INT64_MAX) -> int:
        """The field ``name``: a decimal integer in ``lo..hi`` (int64 by default)."""
        raw = self.fields.get(name)
        if raw is not None and _INT.fullmatch(raw) and lo <= (value := int(raw)) <= hi:
            return value  # the fast path (19 digits at most: within MAX_TEXT)
        raw = self.text(name)
        if not _INT.fullmatch(raw):
            raise MalformedEntry(f"field {name!r} is not an integer: {raw[:40]!r}")
        value = int(raw)
        if not lo <= value <= hi:
            raise MalformedEntry(f"field {name!r} is out of range [{lo}, {hi}]: {value}")
        return value

    def currency(self, name: str) -> str:
        """The field ``name``: an ISO 4217 code (three capital letters)."""
        value = self.text(name)
        if not _CURRENCY.fullmatch(value):
            raise MalformedEntry(f"field {name!r} is not an ISO currency code: {value[:8]!r}")
        return value
