"""Tools of the hostile-input tests (contract §3.6, §3.7), shared by tests/api and tests/hub.

* :class:`ServerLog` collects what a server logged that would page an operator
  (``gifting`` warnings and up, any ``ERROR`` from uvicorn, asyncio or
  websockets): a bad frame, body or token must be answered, never logged as
  a server error.
* :func:`bad_tokens` forges every kind of bad bearer token for a secret.
* Hypothesis strategies of hostile values: JSON documents of any shape,
  integers at the edges (0, -1, 2^53, 2^63, 2^64), strings with control,
  format and markup characters, huge and deeply nested values.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
from hypothesis import strategies as st

# --------------------------------------------------------------------------- server logs

#: Loggers whose records reach the capture: uvicorn's do not propagate to the root.
_CAPTURED = ("", "uvicorn")


class ServerLog(logging.Handler):
    """Records, as ``"logger LEVEL message"``, what an operator would be alerted by."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        ours = record.name == "gifting" or record.name.startswith("gifting.")
        if record.levelno >= (logging.WARNING if ours else logging.ERROR):
            traceback = " (with a traceback)" if record.exc_info else ""
            self.problems.append(
                f"{record.name} {record.levelname} {record.getMessage()[:300]}{traceback}"
            )

    def take(self) -> list[str]:
        """The problems logged since the last call."""
        problems, self.problems = self.problems, []
        return problems


@contextlib.contextmanager
def server_log() -> Iterator[ServerLog]:
    """Capture server problems while the block runs (attach after the server is built:
    uvicorn's ``Config`` re-applies its logging config)."""
    handler = ServerLog()
    loggers = [logging.getLogger(name) for name in _CAPTURED]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


# --------------------------------------------------------------------------- tokens


def _b64(data: dict[str, object]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**over: object) -> dict[str, object]:
    """Valid claims for ``alice`` (ten minutes), with ``over`` changed (``None`` removes)."""
    base: dict[str, object] = {
        "sub": "alice", "name": "Alice", "exp": int(time.time()) + 600,
        "iss": "gifting", "aud": "gifting",
    }  # fmt: skip
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def hs256(secret: str, body: dict[str, object]) -> str:
    """``body`` signed with HS256 under ``secret``."""
    return jwt.encode(body, secret, algorithm="HS256")


def signed_with_header(secret: str, header: dict[str, object], body: dict[str, object]) -> str:
    """A token whose header says ``header`` (any alg) but is HMAC-SHA256-signed with ``secret``:
    the algorithm-confusion forgery."""
    import hashlib
    import hmac

    signing_input = f"{_b64(header)}.{_b64(body)}"
    digest = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


def bad_tokens(secret: str) -> dict[str, Callable[[], str]]:
    """Every kind of bad token for a server whose secret is ``secret``, by name."""
    now = int(time.time())
    return {
        "forged signature": lambda: hs256("another-secret-0123456789abcdef0123", claims()),
        "alg none": lambda: f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims())}.",
        "alg none with a signature": lambda: (
            f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims())}."
            + hs256(secret, claims()).rsplit(".", 1)[1]
        ),
        "HS512": lambda: jwt.encode(claims(), secret * 2, algorithm="HS512"),
        "HS512 header, HS256 signature": lambda: signed_with_header(
            secret, {"alg": "HS512", "typ": "JWT"}, claims()
        ),
        "RS256 header, HMAC signature": lambda: signed_with_header(
            secret, {"alg": "RS256", "typ": "JWT"}, claims()
        ),
        "no alg": lambda: signed_with_header(secret, {"typ": "JWT"}, claims()),
        "expired": lambda: hs256(secret, claims(exp=now - 1)),
        "missing exp": lambda: hs256(secret, claims(exp=None)),
        "exp in the year 3e10 (no maximum lifetime)": lambda: hs256(secret, claims(exp=10**18)),
        "exp past the maximum lifetime": lambda: hs256(secret, claims(exp=now + 367 * 86400)),
        "exp not a number": lambda: hs256(secret, claims(exp="tomorrow")),
        "not yet valid": lambda: hs256(secret, claims(nbf=now + 600)),
        "missing iss": lambda: hs256(secret, claims(iss=None)),
        "another service's iss": lambda: hs256(secret, claims(iss="billing")),
        "missing aud": lambda: hs256(secret, claims(aud=None)),
        "another audience": lambda: hs256(secret, claims(aud="billing")),
        "audience list without ours": lambda: hs256(secret, claims(aud=["billing", "chat"])),
        "missing sub": lambda: hs256(secret, claims(sub=None)),
        "sub not a string": lambda: hs256(secret, claims(sub=42)),
        "sub with a newline": lambda: hs256(secret, claims(sub="ali\nce")),
        "sub with NUL": lambda: hs256(secret, claims(sub="ali\x00ce")),
        "sub with a space": lambda: hs256(secret, claims(sub="ali ce")),
        "sub too long": lambda: hs256(secret, claims(sub="a" * 65)),
        "empty sub": lambda: hs256(secret, claims(sub="")),
        "roles not a list": lambda: hs256(secret, claims(roles="creator")),
        "roles of numbers": lambda: hs256(secret, claims(roles=[1])),
        "name too long": lambda: hs256(secret, claims(name="x" * 65)),
        "name with control characters": lambda: hs256(secret, claims(name="a\x07b")),
        "name with an RTL override": lambda: hs256(secret, claims(name="evil\u202egnp.exe")),
        "garbage": lambda: "not-a-token",
        "two parts": lambda: "abc.def",
        "huge": lambda: "a" * 10_000,
        "huge but signed": lambda: hs256(secret, claims(pad="x" * 6000)),
        "empty": lambda: "",
    }


# --------------------------------------------------------------------------- hostile values

#: Integers at the edges of every representation a client or a store might use.
EDGE_INTS: list[int] = [
    0, -1, 1, 2**31 - 1, 2**31, 2**53 - 1, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1,
    2**64, -(2**63), -(2**63) - 1, 10**30,
]  # fmt: skip

#: Strings that have broken parsers, key names, log lines and pages elsewhere.
HOSTILE_STRINGS: list[str] = [
    "", " ", "\t", "\n", "\x00", "a\x00b", "\x7f", "\x1b[31m", "\u0085", "\u2028",
    "\u202e", "\u200b", "\ufeff", "\ufffd", "é", "🌹", "a b", "a:b", "{a}", "a\"b", "a'b",
    "a\\b", "../../etc/passwd", "%00", "%s%n", "${jndi:x}", "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>", "&lt;b&gt;", "NaN", "null", "true", "-1", "1e309",
]  # fmt: skip
#: Lengths just past the limits of ids (64), item ids (32) and texts (500), and huge.
HOSTILE_LENGTHS: list[int] = [33, 65, 201, 501, 2000, 5000]


def hostile_text(max_size: int = 80) -> st.SearchStrategy[str]:
    """Strings of every kind: the table above, any code point (surrogates excluded), huge."""
    return st.one_of(
        st.sampled_from(HOSTILE_STRINGS),
        st.text(max_size=max_size),
        st.text(st.characters(codec="utf-8"), min_size=1, max_size=max_size),
        st.sampled_from(HOSTILE_LENGTHS).map(lambda n: "w" * n),
        st.sampled_from(HOSTILE_LENGTHS).map(lambda n: "é" * n),
    )


json_scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(EDGE_INTS),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    hostile_text(),
)

#: JSON documents of any shape (objects, arrays, scalars), a few levels deep.
json_documents: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(hostile_text(12), inner, max_size=5),
    ),
    max_leaves=12,
)


def deep_json(depth: int, leaf: str = "1") -> str:
    """``leaf`` inside ``depth`` JSON arrays (built as text: encoders recurse)."""
    return "[" * depth + leaf + "]" * depth


def deep_msgpack(depth: int, leaf: bytes = b"\x01") -> bytes:
    """``leaf`` inside ``depth`` one-element msgpack arrays."""
    return b"\x91" * depth + leaf
