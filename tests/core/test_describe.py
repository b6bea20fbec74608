"""How error messages name a value: its JSON kind, a short repr, never a whole body."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gifting.core.describe import described, json_kind, short

# No deadline: the test machine is shared, and a slow example there is load, not a
# regression.
RELAXED = settings(deadline=None)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, "null"),
        (True, "boolean"),  # a bool is an int in Python, never in JSON
        (False, "boolean"),
        (0, "integer"),
        (2**63, "integer"),
        (1.0, "float (a number with a fraction or exponent)"),
        (float("nan"), "float (a number with a fraction or exponent)"),
        ("", "string"),
        ("5", "string"),
        ([], "array"),
        ({}, "object"),
        (b"x", "bytes"),  # not JSON: its Python type name
        ((1,), "tuple"),
    ],
)
def test_json_kind(value: object, kind: str) -> None:
    assert json_kind(value) == kind


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "boolean true"),
        (False, "boolean false"),
        (None, "null"),  # JSON spelling, like booleans: not Python's "None"
        (5, "integer 5"),
        (-1, "integer -1"),
        (0.5, "float (a number with a fraction or exponent) 0.5"),
        ("1", "string '1'"),
        ([1], "array [1]"),
        ({"a": 1}, "object {'a': 1}"),
    ],
)
def test_described(value: object, text: str) -> None:
    assert described(value) == text


def test_short_keeps_short_values_whole() -> None:
    assert short("rose") == "'rose'"
    assert short(5) == "5"
    assert short("x" * 38) == repr("x" * 38)  # exactly 40 characters


def test_short_cuts_long_values() -> None:
    assert short("x" * 39) == "'" + "x" * 36 + "..."
    assert short("x" * 10_000, limit=10) == "'xxxxxx..."
    assert short(list(range(1_000))) == "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11..."


@RELAXED
@given(value=st.text() | st.binary() | st.lists(st.integers()), limit=st.integers(4, 200))
def test_short_never_exceeds_its_limit(value: object, limit: int) -> None:
    text = short(value, limit)
    assert len(text) <= limit
    full = repr(value)
    assert text == full if len(full) <= limit else text == full[: limit - 3] + "..."


@RELAXED
@given(value=st.text(min_size=1_000))
def test_described_never_echoes_a_whole_body(value: str) -> None:
    assert len(described(value)) <= len("string ") + 40
