"""Opening connections and reading close codes: what viewers and overlays share.

Close codes (docs/protocol.md) fall in two groups. **Final**: the server
means it — 1000 the stream ended, 1003/1009 a client bug, 1008 bad
credentials, unknown stream or flooding; reconnecting would not help.
**Retry**: everything else — 1001 the server is going away, 1011 keepalive
timeout, 1012 restart, 1013 the connection fell behind, 1006 the network
dropped (no close frame at all) — so the client reconnects with backoff.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Final, TypeAlias
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

from gifting_client.errors import ConnectionFailed
from gifting_client.messages import Encoding, subprotocol_of

__all__ = [
    "FINAL_CLOSE_CODES",
    "MAX_FRAME_BYTES",
    "STREAM_ENDED",
    "TokenSource",
    "open_socket",
    "resolve_token",
    "ws_url",
]

#: The server closed for good: do not reconnect.
FINAL_CLOSE_CODES: Final = frozenset({1000, 1002, 1003, 1007, 1008, 1009, 1010})
#: The close code of a stream that ended.
STREAM_ENDED: Final = 1000
#: Largest frame accepted from the server (a viewer batch of a busy tick can be large).
MAX_FRAME_BYTES: Final = 16 * 1024 * 1024

#: A token, or a function returning a fresh one (called on every connect).
TokenSource: TypeAlias = str | Callable[[], str | Awaitable[str]]


def ws_url(base: str, path: str, params: Mapping[str, str]) -> str:
    """``base`` (``ws://``, ``wss://``, ``http://`` or ``https://`` + host) joined with ``path``."""
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(f"not a server URL: {base!r} (expected ws://host:port or http://...)")
    prefix = parts.path.rstrip("/")
    return urlunsplit((scheme, parts.netloc, prefix + path, urlencode(params), ""))


async def open_socket(
    url: str,
    encoding: Encoding,
    *,
    headers: Mapping[str, str] | None = None,
    open_timeout: float = 10.0,
) -> ClientConnection:
    """Open a WebSocket speaking ``encoding``; raise :class:`ConnectionFailed` on any failure.

    The error's ``retryable`` says whether trying again later may help (the
    network, a timeout, a 5xx from a proxy) or not (a malformed URL, a 4xx).
    """
    try:
        return await connect(
            url,
            additional_headers=dict(headers or {}),
            subprotocols=[Subprotocol(subprotocol_of(encoding))],
            open_timeout=open_timeout,
            max_size=MAX_FRAME_BYTES,
        )
    except InvalidURI as exc:
        raise ConnectionFailed(f"invalid URL: {exc}", retryable=False) from exc
    except InvalidStatus as exc:
        status = exc.response.status_code
        retryable = status >= 500 or status in (408, 429)
        raise ConnectionFailed(f"HTTP {status} on connect", retryable=retryable) from exc
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        raise ConnectionFailed(f"cannot connect: {exc!r}", retryable=True) from exc


async def resolve_token(token: TokenSource) -> str:
    """The token to connect with (calling ``token`` if it is a function)."""
    if isinstance(token, str):
        return token
    value = token()
    if not isinstance(value, str):
        value = await value
    return value
