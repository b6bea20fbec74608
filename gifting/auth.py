"""Bearer tokens: HS256 JWTs signed with ``GIFTING_JWT_SECRET`` (docs/contract.md §4).

Claims: ``sub`` (the user id, a valid external id), ``exp`` (required, unix
seconds, at most :data:`MAX_TTL_S` ahead), ``iss`` and ``aud`` (both
required, both ``"gifting"``: a token another service signed with a shared
secret is not one of ours), ``name`` (display name; the user id when absent)
and optional ``roles`` (a list of strings; ``creator`` may start streams). Only HS256 is
accepted: a token whose header says ``none``, ``HS512`` or ``RS256`` is
refused before its signature is even looked at, so the classic algorithm
confusion attacks do not apply.

Expiry is checked against :func:`gifting.clock.now_ms`, the one clock tests
can move, not against the wall clock inside PyJWT.

The HTTP routes and the WebSocket hub share :func:`principal_from_token`;
:func:`principal_from_connection` finds the token in an ``Authorization:
Bearer`` header, or, on a WebSocket only, a ``token`` query parameter
(browsers cannot set headers on a WebSocket; on HTTP a token in the URL
would end up in logs and referrers, so it is refused).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import jwt
from starlette.requests import HTTPConnection

from gifting.clock import now_ms
from gifting.core.errors import BadRequest, Forbidden, Unauthorized
from gifting.core.ids import check_id

__all__ = [
    "ALGORITHM",
    "CREATOR",
    "Principal",
    "bearer_token",
    "mint_token",
    "principal_from_connection",
    "principal_from_token",
]

ALGORITHM: Final = "HS256"
#: The ``iss`` and ``aud`` every token must carry.
ISSUER: Final = "gifting"
AUDIENCE: Final = "gifting"
#: The role that may create streams.
CREATOR: Final = "creator"
#: Longest token accepted; real ones are a few hundred bytes.
MAX_TOKEN_LENGTH: Final = 4096
MAX_NAME_LENGTH: Final = 64
MAX_ROLES: Final = 16
MAX_ROLE_LENGTH: Final = 32
#: Longest lifetime ``mint_token`` will sign (one year).
MAX_TTL_S: Final = 366 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token speaks for: user id, display name and roles."""

    user: str
    name: str
    roles: frozenset[str]

    def has_role(self, role: str) -> bool:
        """Whether the token grants ``role``."""
        return role in self.roles

    def require_role(self, role: str) -> None:
        """Raise ``Forbidden`` unless the token grants ``role``."""
        if role not in self.roles:
            raise Forbidden(f"this needs the {role!r} role")


def _valid_name(value: object) -> bool:
    return (
        isinstance(value, str)
        and bool(value.strip())
        and len(value) <= MAX_NAME_LENGTH
        and value.isprintable()
    )


def _check_name(value: object, user: str) -> str:
    if value is None:
        return user
    if not isinstance(value, str) or not _valid_name(value):
        raise Unauthorized(
            f"token claim 'name' must be a printable string of 1 to {MAX_NAME_LENGTH} characters"
        )
    return value


def _check_roles(value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or len(value) > MAX_ROLES:
        raise Unauthorized(f"token claim 'roles' must be a list of at most {MAX_ROLES} strings")
    for role in value:
        if not isinstance(role, str) or not 0 < len(role) <= MAX_ROLE_LENGTH:
            raise Unauthorized("token claim 'roles' must hold only short strings")
    return frozenset(value)


def principal_from_token(token: str, secret: str) -> Principal:
    """Verify an HS256 token and return its :class:`Principal`, or raise ``Unauthorized``.

    Refused: another algorithm (``none`` included), a bad signature, a missing
    or past ``exp``, a missing ``sub`` or one that is not a valid id (control
    characters, over 64 characters), a malformed ``name`` or ``roles``.
    """
    if not token:
        raise Unauthorized("missing bearer token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized("bearer token is too long")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            # Expiry and not-before are checked below against the server's clock.
            audience=AUDIENCE,
            issuer=ISSUER,
            options={
                "require": ["exp", "sub", "iss", "aud"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"token is missing the {exc.claim!r} claim") from None
    except jwt.InvalidAlgorithmError:
        raise Unauthorized(f"token must be signed with {ALGORITHM}") from None
    except jwt.InvalidSignatureError:
        raise Unauthorized("token signature is invalid") from None
    except jwt.InvalidAudienceError:
        raise Unauthorized(f"token audience must be {AUDIENCE!r}") from None
    except jwt.InvalidIssuerError:
        raise Unauthorized(f"token issuer must be {ISSUER!r}") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {exc}") from None
    return _principal_from_claims(claims)


def _principal_from_claims(claims: dict[str, object]) -> Principal:
    now_s = now_ms() // 1000
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise Unauthorized("token claim 'exp' must be a number of seconds")
    if exp <= now_s:
        raise Unauthorized("token has expired")
    if exp > now_s + MAX_TTL_S:
        raise Unauthorized(f"token lifetime is over the {MAX_TTL_S} s maximum")
    nbf = claims.get("nbf")
    if nbf is not None:
        if isinstance(nbf, bool) or not isinstance(nbf, int | float):
            raise Unauthorized("token claim 'nbf' must be a number of seconds")
        if nbf > now_s:
            raise Unauthorized("token is not valid yet")
    try:
        user = check_id(claims.get("sub"), "sub")
    except BadRequest as exc:
        raise Unauthorized(f"token claim {exc.message}") from None
    return Principal(user, _check_name(claims.get("name"), user), _check_roles(claims.get("roles")))


def bearer_token(conn: HTTPConnection) -> str | None:
    """The token of a request or WebSocket: ``Authorization: Bearer``, else (WebSocket) ``?token=``.

    Returns ``None`` when neither is present; raises ``Unauthorized`` for an
    ``Authorization`` header of another scheme (rather than silently ignoring
    it), and for a ``token`` query parameter on plain HTTP.
    """
    header = conn.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        return token.strip()
    query_token = conn.query_params.get("token")
    if query_token is not None and conn.scope["type"] != "websocket":
        raise Unauthorized(
            "send the token in the Authorization header "
            "(the token query parameter is for WebSockets only)"
        )
    return query_token


def principal_from_connection(conn: HTTPConnection, secret: str) -> Principal:
    """The verified :class:`Principal` of a request or WebSocket, or raise ``Unauthorized``."""
    token = bearer_token(conn)
    if token is None:
        raise Unauthorized("missing bearer token (Authorization header or token parameter)")
    return principal_from_token(token, secret)


def mint_token(
    secret: str,
    user: str,
    name: str | None = None,
    roles: Iterable[str] = (),
    ttl_s: int = 3600,
) -> str:
    """Sign a token for ``user`` valid ``ttl_s`` seconds (CLI ``gifting token`` and dev mode)."""
    check_id(user, "user")
    if name is not None and not _valid_name(name):
        raise BadRequest(f"name must be a printable string of 1 to {MAX_NAME_LENGTH} characters")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise BadRequest(f"ttl must be between 1 and {MAX_TTL_S} seconds")
    now_s = now_ms() // 1000
    claims: dict[str, object] = {
        "sub": user,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "name": user if name is None else name,
        "iat": now_s,
        "exp": now_s + ttl_s,
    }
    role_list = sorted(set(roles))
    if role_list:
        claims["roles"] = role_list
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
