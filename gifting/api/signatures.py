"""Webhook signatures: HMAC-SHA256 over ``"<t>.<raw body>"`` (docs/contract.md §4).

The provider sends ``X-Gifting-Signature: t=<unix seconds>,v1=<hex digest>``.
The timestamp is part of the signed text, so an attacker cannot re-date an
old request, and requests older (or newer) than the tolerance (300 s by
default) are refused. Several ``v1=`` entries may be sent while a secret is
being rotated; one match is enough. Digests are compared in constant time.

A replay inside the tolerance is not refused here: the ledger's idempotency
by purchase id and cash-out id returns the first result (or 409 for another
body), which is what a provider retrying a timed-out call needs.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from gifting.clock import now_ms
from gifting.core.errors import Unauthorized

__all__ = ["SIGNATURE_HEADER", "sign", "signature", "verify"]

SIGNATURE_HEADER: Final = "X-Gifting-Signature"
MAX_HEADER_LENGTH: Final = 1024
_MAX_SIGNATURES: Final = 8
_HEX_DIGITS: Final = frozenset("0123456789abcdef")


def signature(secret: str, body: bytes, t: int) -> str:
    """The hex HMAC-SHA256 of ``"<t>.<body>"`` under ``secret``."""
    message = str(t).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, t: int | None = None) -> str:
    """The ``X-Gifting-Signature`` header value for ``body`` at time ``t`` (default: now)."""
    if t is None:
        t = now_ms() // 1000
    return f"t={t},v1={signature(secret, body, t)}"


def _parse(header: str) -> tuple[int, list[str]]:
    """Split a header into its timestamp and its ``v1`` digests, or raise ``Unauthorized``."""
    if len(header) > MAX_HEADER_LENGTH:
        raise Unauthorized(f"{SIGNATURE_HEADER} is too long")
    timestamp: int | None = None
    digests: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise Unauthorized(f"malformed {SIGNATURE_HEADER}: expected t=<seconds>,v1=<hex>")
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                raise Unauthorized(f"malformed {SIGNATURE_HEADER}: t must be one unix time")
            if len(value) > 12:
                raise Unauthorized(f"malformed {SIGNATURE_HEADER}: t is out of range")
            timestamp = int(value)
        elif key == "v1":
            if len(value) != 64 or not set(value) <= _HEX_DIGITS:
                raise Unauthorized(
                    f"malformed {SIGNATURE_HEADER}: v1 must be 64 lower-case hex digits"
                )
            digests.append(value)
        # Other schemes (v0, a future v2) are ignored, as providers do.
    if timestamp is None:
        raise Unauthorized(f"malformed {SIGNATURE_HEADER}: no t=<unix seconds>")
    if not digests:
        raise Unauthorized(f"malformed {SIGNATURE_HEADER}: no v1=<hex digest>")
    if len(digests) > _MAX_SIGNATURES:
        raise Unauthorized(f"malformed {SIGNATURE_HEADER}: too many v1 entries")
    return timestamp, digests


def verify(secret: str, header: str | None, body: bytes, *, tolerance_s: int = 300) -> int:
    """Check a webhook's signature header against its raw body; return its timestamp.

    Raises ``Unauthorized`` with a clear message when the header is missing or
    malformed, the timestamp is more than ``tolerance_s`` seconds from now, or
    no ``v1`` digest matches.
    """
    if header is None or not header.strip():
        raise Unauthorized(f"missing {SIGNATURE_HEADER} header")
    timestamp, digests = _parse(header)
    now_s = now_ms() // 1000
    if abs(now_s - timestamp) > tolerance_s:
        raise Unauthorized(
            f"{SIGNATURE_HEADER} timestamp is more than {tolerance_s} s from the server's time"
        )
    expected = signature(secret, body, timestamp)
    # Compare against every digest (no early exit) so timing says nothing about which matched.
    matched = False
    for digest in digests:
        matched |= hmac.compare_digest(expected, digest)
    if not matched:
        raise Unauthorized(f"{SIGNATURE_HEADER} does not match the body")
    return timestamp
