"""How error messages name a value someone sent: its JSON kind and a short repr."""

from __future__ import annotations

_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),  # before int: a bool is an int in Python, never in JSON
    (int, "integer"),
    (float, "float (a number with a fraction or exponent)"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def json_kind(value: object) -> str:
    """The JSON kind of a decoded value: ``null``, ``boolean``, ``integer``, ``string``..."""
    if value is None:
        return "null"
    for cls, name in _KINDS:
        if isinstance(value, cls):
            return name
    return type(value).__name__


def short(value: object, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters (a message never echoes a whole body)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def described(value: object) -> str:
    """``<kind> <short repr>``, e.g. ``boolean true`` or ``integer 5``; ``null`` alone."""
    if value is None:
        return "null"  # its repr would read "null None": Python's spelling in a JSON message
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    return f"{json_kind(value)} {short(value)}"
