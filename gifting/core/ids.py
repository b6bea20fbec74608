"""Identifiers: validation of ids that come from outside, and new ids we mint.

Ids are the idempotency keys of the ledger (docs/contract.md §7): the client's message
id, the provider's purchase id, our event ids. Outside ids are short printable
strings so they can sit inside Redis key names and log lines safely.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets

from gifting.core.errors import BadRequest

MAX_ID_LENGTH = 64
# Printable ASCII without space, braces (hash tags), colon (key separator) or quotes.
_ID = re.compile(r"[A-Za-z0-9._~@+\-/=!#$%&*^|]{1,64}")
#: The same rule as a JSON Schema ``pattern`` (ECMA-262 and Python ``re.search`` alike:
#: ``(?!\n)`` stops Python's ``$`` from matching before a trailing newline).
ID_PATTERN = f"^{_ID.pattern}$(?!\\n)"


def check_id(value: object, field: str) -> str:
    """Return ``value`` if it is a usable external id, else raise ``BadRequest``."""
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string")
    if not value:
        raise BadRequest(f"{field} must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise BadRequest(f"{field} is longer than {MAX_ID_LENGTH} characters")
    if not _ID.fullmatch(value):
        raise BadRequest(
            f"{field} may hold only letters, digits and ._~@+-/=!#$%&*^| "
            "(no spaces, control characters, braces, colons or quotes)"
        )
    return value


# Unique per process: 48 random bits drawn once, then a counter (os.urandom per
# id showed up in profiles of gift storms).
_PROCESS_TAG = secrets.token_hex(6)
_counter = itertools.count()


def new_event_id(now_ms: int) -> str:
    """Mint a ledger event id: time-ordered (ms, hex), this process's tag, a counter."""
    return f"e{now_ms:011x}{_PROCESS_TAG}{next(_counter) & 0xFFFFFF:06x}"


def new_id(prefix: str, now_ms: int) -> str:
    """Mint a time-ordered id with ``prefix`` (streams, cash-outs, overlay keys)."""
    return f"{prefix}{now_ms:011x}{secrets.token_hex(5)}"


def credit_event_id(spend_event: str) -> str:
    """The event id of the creator credit for spend ``spend_event`` (``e...`` -> ``c...``).

    Deterministic, so the hub, the persister's repair and PostgreSQL all agree
    on it and the credit is deduplicated everywhere.
    """
    return "c" + spend_event[1:]


def comment_event_id(user: str, client_id: str) -> str:
    """The event id of ``user``'s free comment with message id ``client_id``.

    Deterministic (a retry on any hub is the same comment) and unambiguous: a
    digest of the length-prefixed pair, so no other (user, id) pair gives it —
    joining the two with a separator did (``b`` + ``c1.a`` = ``a.b`` + ``c1``).
    """
    pair = f"{len(user)}:{user}{len(client_id)}:{client_id}"
    return "m" + hashlib.sha256(pair.encode()).hexdigest()[:32]


def fingerprint(*parts: object) -> str:
    """A short stable digest of a payload, to tell a retry from a reuse of its id."""
    joined = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(joined.encode()).hexdigest()[:24]
