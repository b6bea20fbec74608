"""The pure parts of discovery: fresh presence reports, the ranking, the cursor."""

from __future__ import annotations

import pytest

from gifting.core.discovery import (
    Ranked,
    format_cursor,
    fresh_viewers,
    parse_cursor,
    presence_value,
    rank,
)
from gifting.core.errors import BadRequest


def test_only_fresh_positive_reports_count_and_the_rest_are_stale() -> None:
    fields = {
        b"hub-a": presence_value(3, 2000).encode(),
        b"hub-b": presence_value(4, 1000).encode(),  # expired at 1000
        b"hub-c": presence_value(0, 5000).encode(),
        b"hub-d": b"garbage",
    }
    total, stale = fresh_viewers(fields, 1000)
    assert total == 3
    assert sorted(stale) == [b"hub-b", b"hub-c", b"hub-d"]


def test_rank_puts_the_most_watched_first_then_the_newer() -> None:
    ranked = rank([
        Ranked("old", 1, 5),
        Ranked("new", 9, 5),
        Ranked("top", 2, 50),
        Ranked("none", 3, 0),
        Ranked("a", 9, 5),
    ])  # fmt: skip
    assert ranked == ["top", "a", "new", "old", "none"]


def test_cursor_round_trips_and_rejects_anything_else() -> None:
    assert parse_cursor(format_cursor("abcdefgh12", 40)) == ("abcdefgh12", 40)
    for bad in ["", "x", "abcdefgh12", "abcdefgh12.", "abcdefgh12.-1", "abcdefgh12.01",
                "short.1", "abcdefgh12.1x", "abc:defgh12.1", "a" * 33 + ".1"]:  # fmt: skip
        with pytest.raises(BadRequest, match="cursor"):
            parse_cursor(bad)
