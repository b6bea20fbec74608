"""Webhook signatures, for receivers of deliveries (and for tests that act as a provider).

Every webhook the server sends (and every provider webhook it receives) is
signed: ``X-Gifting-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<raw body>">``. The timestamp is signed too, so an old delivery cannot
be re-dated; :func:`verify_signature` refuses one more than ``tolerance_s``
(300 s) from now. During a secret rotation a header may carry several
``v1=`` digests: one match is enough. Digests are compared in constant time.

Verify the raw bytes as received, before decoding them: re-encoding parsed
JSON changes the bytes and the signature no longer matches. A valid
signature says who sent the delivery, not that it is new: deliveries come at
least once, so deduplicate by the event id they carry.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Final

from gifting_client.errors import InvalidSignature

__all__ = ["SIGNATURE_HEADER", "TOLERANCE_S", "sign", "verify_signature"]

SIGNATURE_HEADER: Final = "X-Gifting-Signature"
#: How far (seconds) a signature's timestamp may be from the receiver's clock.
TOLERANCE_S: Final = 300
_MAX_HEADER_LENGTH: Final = 1024
_HEX: Final = frozenset("0123456789abcdef")


def _digest(secret: str | bytes, t: int, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, str(t).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, t: int | None = None) -> str:
    """The ``X-Gifting-Signature`` value for ``body`` at unix time ``t`` (default: now)."""
    if t is None:
        t = int(time.time())
    return f"t={t},v1={_digest(secret, t, body)}"


def _parse(header: str) -> tuple[int, list[str]]:
    if len(header) > _MAX_HEADER_LENGTH:
        raise InvalidSignature(f"{SIGNATURE_HEADER} is too long")
    timestamp: int | None = None
    digests: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise InvalidSignature(f"malformed {SIGNATURE_HEADER}: expected t=<s>,v1=<hex>")
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                raise InvalidSignature(f"malformed {SIGNATURE_HEADER}: t must be one unix time")
            if len(value) > 12:
                raise InvalidSignature(f"malformed {SIGNATURE_HEADER}: t is out of range")
            timestamp = int(value)
        elif key == "v1":
            if len(value) != 64 or not set(value) <= _HEX:
                raise InvalidSignature(f"malformed {SIGNATURE_HEADER}: v1 must be 64 hex digits")
            digests.append(value)
        # other schemes (v0, a future v2) are ignored
    if timestamp is None or not digests:
        raise InvalidSignature(f"malformed {SIGNATURE_HEADER}: needs t=<s> and v1=<hex>")
    return timestamp, digests


def verify_signature(
    secret: str | bytes,
    header: str | None,
    body: bytes,
    *,
    tolerance_s: int = TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Check a delivery's signature header against its raw ``body``; return its timestamp.

    Raises :class:`~gifting_client.errors.InvalidSignature` when the header
    is missing or malformed, its timestamp is more than ``tolerance_s``
    seconds from ``now`` (default: the clock), or no ``v1`` digest matches.
    """
    if header is None or not header.strip():
        raise InvalidSignature(f"missing {SIGNATURE_HEADER} header")
    timestamp, digests = _parse(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise InvalidSignature(
            f"{SIGNATURE_HEADER} timestamp is more than {tolerance_s} s from this clock"
        )
    expected = _digest(secret, timestamp, body)
    matched = False
    for digest in digests:  # no early exit: timing says nothing about which matched
        matched |= hmac.compare_digest(expected, digest)
    if not matched:
        raise InvalidSignature(f"{SIGNATURE_HEADER} does not match the body")
    return timestamp
