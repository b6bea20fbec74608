"""The HTTP API, typed: catalog, wallet, badges, cash-outs, streams, moderation, webhooks.

::

    async with ApiClient("http://127.0.0.1:8000", token) as api:
        wallet = await api.wallet()                  # Wallet(user, coins, diamonds, budget, ...)
        await api.set_budget(5_000)
        async for entry in api.history():            # every page, newest first
            ...

Answers are frozen structs decoded strictly (:mod:`gifting_client.api_types`).
A refusal ``{"code", "message"}`` raises the same class the WebSocket side
raises for that code (:mod:`gifting_client.errors`), with ``status`` set.

Retries. A call is retried only when sending it again cannot do anything
twice: reads, ``PUT``, ``DELETE``, and the ``POST`` calls the server makes
idempotent (a badge or a gift on a video by its client id, a cash-out by its ``Idempotency-Key``,
ending a stream, naming a moderator, a block, a hide, a cancel). Those are
retried on 429, 502, 503 and 504 and on lost connections, with capped
exponential backoff and jitter (:class:`~gifting_client.backoff.Backoff`),
waiting at least what ``Retry-After`` asks (up to ``max_retry_after``). The
client generates the ids of badges and cash-outs when the caller gives none,
and keeps them across its retries. A call that is not idempotent (creating a
stream or a webhook subscription, a dev purchase) is sent once; a connection
lost after sending it raises :class:`~gifting_client.errors.OutcomeUnknown`.
When an idempotent call runs out of attempts without an answer it raises
``OutcomeUnknown`` too, with the id to send again.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from gifting_client.api_types import (
    BadgePurchase,
    Block,
    BlockList,
    Cashout,
    CashoutList,
    Catalog,
    CreatedStream,
    DeliveryList,
    DevPurchase,
    DevToken,
    HiddenEvent,
    HistoryEntry,
    HistoryPage,
    Moderator,
    ModeratorList,
    ModeratorRemoved,
    OverlayAccess,
    StreamGoal,
    StreamGoals,
    StreamGuests,
    StreamInfo,
    SubscriptionList,
    Unblocked,
    VideoGift,
    VideoInfo,
    Wallet,
    WebhookDelivery,
    WebhookSubscription,
    decode_answer,
)
from gifting_client.backoff import Backoff
from gifting_client.errors import (
    ConnectionFailed,
    ErrorReply,
    OutcomeUnknown,
    UnexpectedResponse,
    error_from_reply,
)

__all__ = ["IDEMPOTENCY_HEADER", "RETRY_STATUSES", "ApiClient", "new_client_id"]

_T = TypeVar("_T")

IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
#: Statuses an idempotent call is retried on (the server did not act, or may say later).
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
_REPLAYED_HEADER: Final = "Idempotent-Replayed"
_DEFAULT_BACKOFF: Final = Backoff(initial=0.2, maximum=5.0)
# A status without a JSON error body (a proxy's page) still gets its fitting class.
_CODE_OF_STATUS: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "bad_request",
    422: "bad_request",
    429: "rate_limited",
    502: "unavailable",
    503: "unavailable",
    504: "unavailable",
}


def new_client_id(prefix: str = "c") -> str:
    """A fresh idempotency id (``<prefix>-<32 hex>``), valid as any API id."""
    return f"{prefix}-{uuid.uuid4().hex}"


def _seg(value: str) -> str:
    """One path segment, percent-encoded (ids may hold ``/``)."""
    return quote(value, safe="")


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the ``Retry-After`` header asks for (delta or HTTP date), if any."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isascii() and raw.isdigit():
        return float(raw)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _error(response: httpx.Response, id: str | None) -> ErrorReply | UnexpectedResponse:
    """The exception of a refused call: the typed class of its ``code`` (or its status)."""
    status = response.status_code
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        message = body.get("message")
        text = message if isinstance(message, str) else body["code"]
        return error_from_reply(body["code"], text, id, status=status)
    code = _CODE_OF_STATUS.get(status, "unavailable" if status >= 500 else None)
    if code is None:
        return UnexpectedResponse(f"HTTP {status} without an error body", status, response.content)
    return error_from_reply(code, f"HTTP {status}", id, status=status)


class ApiClient:
    """An async client of the gifting HTTP API for one bearer ``token`` (or none).

    ``base_url``: the server, like ``http://127.0.0.1:8000``. ``token``: the
    caller's bearer token (settable later through :attr:`token`); public
    calls (catalog, a stream's view) need none. ``attempts``: how many times
    an idempotent call is sent at most. ``transport``: an ``httpx``
    transport, for tests. Use as ``async with``, or call :meth:`aclose`.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        attempts: int = 5,
        backoff: Backoff = _DEFAULT_BACKOFF,
        max_retry_after: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.token = token
        self.attempts = attempts
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "gifting-client/0.1"},
        )

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # ------------------------------------------------------------------------- transport

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool,
        id: str | None = None,
    ) -> httpx.Response:
        """Send one call (again, while it may and should be retried); the 2xx response.

        Raises the typed error of a refusal, ``ConnectionFailed`` when the
        server cannot be reached and ``OutcomeUnknown`` when a sent call got
        no answer.
        """
        all_headers = dict(headers or {})
        if self.token is not None:
            all_headers["Authorization"] = f"Bearer {self.token}"
        content = None if json is None else msgspec.json.encode(json)
        if content is not None:
            all_headers["Content-Type"] = "application/json"
        attempt = 0
        while True:
            last = attempt + 1 >= self.attempts
            try:
                response = await self._http.request(
                    method, path, content=content, params=params, headers=all_headers
                )
            except httpx.ConnectError as exc:  # nothing was sent: always safe to try again
                if last:
                    raise ConnectionFailed(
                        f"cannot reach the server: {exc}", retryable=True
                    ) from exc
                await asyncio.sleep(self.backoff.delay(attempt))
            except httpx.TransportError as exc:  # sent, maybe done, no answer
                if not idempotent or last:
                    raise OutcomeUnknown(
                        f"{method} {path}: no answer ({type(exc).__name__}); "
                        "it may or may not have happened",
                        id or "",
                    ) from exc
                await asyncio.sleep(self.backoff.delay(attempt))
            else:
                if response.is_success:
                    return response
                if not idempotent or last or response.status_code not in RETRY_STATUSES:
                    raise _error(response, id)
                wait = self.backoff.delay(attempt)
                asked = _retry_after(response)
                if asked is not None:
                    wait = max(wait, min(asked, self.max_retry_after))
                await asyncio.sleep(wait)
            attempt += 1

    async def _call(
        self,
        answer: type[_T],
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool,
        id: str | None = None,
    ) -> _T:
        """:meth:`_send`, then decode the answer strictly as ``answer``."""
        response = await self._send(
            method, path, json=json, params=params, headers=headers, idempotent=idempotent, id=id
        )
        return self._decode(response, answer)

    async def _call_empty(
        self, method: str, path: str, *, json: Any = None, idempotent: bool
    ) -> None:
        """:meth:`_send` for a call whose answer carries nothing the caller needs."""
        await self._send(method, path, json=json, idempotent=idempotent)

    @staticmethod
    def _decode(response: httpx.Response, answer: type[_T]) -> _T:
        try:
            return decode_answer(response.content, answer)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise UnexpectedResponse(
                f"{response.request.method} {response.request.url.path}: "
                f"the answer is not a {answer.__name__}: {exc}",
                response.status_code,
                response.content,
            ) from exc

    # ------------------------------------------------------------------------- catalog

    async def catalog(self) -> Catalog:
        """``GET /v1/catalog``: gifts, packages, effects, highlights, badges and rates."""
        return await self._call(Catalog, "GET", "/v1/catalog", idempotent=True)

    # ------------------------------------------------------------------------- wallet

    async def wallet(self) -> Wallet:
        """``GET /v1/wallet``: the caller's coins, diamonds, badge and budget."""
        return await self._call(Wallet, "GET", "/v1/wallet", idempotent=True)

    async def set_budget(self, monthly: int | None) -> Wallet:
        """``PUT /v1/wallet/budget``: a monthly budget of ``monthly`` coins (``None``: none).

        Answers the wallet with its new budget.
        """
        body = {"monthly": monthly}
        return await self._call(Wallet, "PUT", "/v1/wallet/budget", json=body, idempotent=True)

    async def history_page(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> HistoryPage:
        """``GET /v1/wallet/history``: one page of the caller's ledger events, newest first.

        Pass the page's ``next`` as ``cursor`` for the following page. The
        history is the durable record: it lags live balances by the persister.
        """
        params: dict[str, str | int] = {}
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        return await self._call(
            HistoryPage, "GET", "/v1/wallet/history", params=params, idempotent=True
        )

    async def history(
        self, *, page_size: int | None = None, cursor: str | None = None
    ) -> AsyncIterator[HistoryEntry]:
        """Every ledger event of the caller, newest first, fetching pages as needed."""
        while True:
            page = await self.history_page(limit=page_size, cursor=cursor)
            for entry in page.entries:
                yield entry
            if page.next is None:
                return
            cursor = page.next

    async def buy_badge(self, badge: str, *, id: str | None = None) -> BadgePurchase:
        """``POST /v1/badges``: buy ``badge`` with coins, idempotent by ``id``.

        Without ``id`` a fresh one is generated and kept across retries. Send
        the same ``id`` again (after :class:`~gifting_client.errors.OutcomeUnknown`)
        to learn the outcome without paying twice; a failed id stays failed.
        """
        client_id = id or new_client_id("b")
        response = await self._send(
            "POST",
            "/v1/badges",
            json={"id": client_id, "badge": badge},
            idempotent=True,
            id=client_id,
        )
        purchase = self._decode(response, BadgePurchase)
        replayed = response.headers.get(_REPLAYED_HEADER, "").lower() == "true"
        return msgspec.structs.replace(purchase, id=purchase.id or client_id, replayed=replayed)

    # ------------------------------------------------------------------------- cash-outs

    async def request_cashout(
        self, diamonds: int, *, idempotency_key: str | None = None
    ) -> Cashout:
        """``POST /v1/cashouts``: hold ``diamonds`` for a payout (201), idempotent by key.

        The ``Idempotency-Key`` is generated when not given and kept across
        retries; it is the answer's ``id``.
        """
        key = idempotency_key or new_client_id("co")
        return await self._call(
            Cashout,
            "POST",
            "/v1/cashouts",
            json={"diamonds": diamonds},
            headers={IDEMPOTENCY_HEADER: key},
            idempotent=True,
            id=key,
        )

    async def cashouts(self, *, limit: int | None = None) -> list[Cashout]:
        """``GET /v1/cashouts``: the caller's cash-outs, newest first."""
        params: dict[str, str | int] = {} if limit is None else {"limit": limit}
        page = await self._call(CashoutList, "GET", "/v1/cashouts", params=params, idempotent=True)
        return page.cashouts

    async def cashout(self, cashout: str) -> Cashout:
        """``GET /v1/cashouts/{id}``: one of the caller's cash-outs (``NotFound`` otherwise)."""
        return await self._call(Cashout, "GET", f"/v1/cashouts/{_seg(cashout)}", idempotent=True)

    async def cancel_cashout(self, cashout: str) -> Cashout:
        """``POST /v1/cashouts/{id}/cancel``: give a held cash-out's diamonds back.

        Only before the payout provider is asked; cancelling twice answers
        the cancelled cash-out again.
        """
        path = f"/v1/cashouts/{_seg(cashout)}/cancel"
        return await self._call(Cashout, "POST", path, idempotent=True, id=cashout)

    # ------------------------------------------------------------------------- streams

    async def create_stream(self, title: str) -> CreatedStream:
        """``POST /v1/streams`` (role ``creator``): start a live stream; 201 with its overlay key.

        Not idempotent: a lost answer raises ``OutcomeUnknown`` and is never
        retried (a retry would start a second stream).
        """
        return await self._call(
            CreatedStream, "POST", "/v1/streams", json={"title": title}, idempotent=False
        )

    async def stream(self, stream: str) -> StreamInfo:
        """``GET /v1/streams/{id}``: the public view (live, totals, top gifters, goal)."""
        return await self._call(StreamInfo, "GET", f"/v1/streams/{_seg(stream)}", idempotent=True)

    async def overlay_access(self, stream: str) -> OverlayAccess:
        """``GET /v1/streams/{id}/overlay``: the overlay key and URL (the creator only)."""
        path = f"/v1/streams/{_seg(stream)}/overlay"
        return await self._call(OverlayAccess, "GET", path, idempotent=True)

    async def end_stream(self, stream: str) -> StreamInfo:
        """``POST /v1/streams/{id}/end`` (its creator): end it; ending it again is a no-op."""
        path = f"/v1/streams/{_seg(stream)}/end"
        return await self._call(StreamInfo, "POST", path, idempotent=True)

    async def set_goal(self, stream: str, target: int, gift: str | None = None) -> StreamGoal:
        """``PUT /v1/streams/{id}/goal`` (its creator): ``target`` coins, or of one ``gift``."""
        path = f"/v1/streams/{_seg(stream)}/goal"
        body = {"target": target, "gift": gift}
        return await self._call(StreamGoal, "PUT", path, json=body, idempotent=True)

    async def set_guests(
        self, stream: str, guests: Sequence[str | tuple[str, str]]
    ) -> StreamGuests:
        """``PUT /v1/streams/{id}/guests`` (its creator): the whole guest list (at most 8).

        Each guest is a user id, or ``(user, display name)``.
        """
        path = f"/v1/streams/{_seg(stream)}/guests"
        body = {
            "guests": [g if isinstance(g, str) else {"user": g[0], "name": g[1]} for g in guests]
        }
        return await self._call(StreamGuests, "PUT", path, json=body, idempotent=True)

    async def set_goals(self, stream: str, goals: list[dict[str, Any]]) -> StreamGoals:
        """``PUT /v1/streams/{id}/goals`` (its creator): at most three goals, each
        ``{"id","title","target","gift","steps"}``; replaces the list."""
        path = f"/v1/streams/{_seg(stream)}/goals"
        return await self._call(StreamGoals, "PUT", path, json={"goals": goals}, idempotent=True)

    # ------------------------------------------------------------------------- moderation

    async def add_moderator(self, user: str) -> Moderator:
        """``POST /v1/moderators`` (a creator): ``user`` may moderate all the caller's streams.

        Idempotent: naming a moderator again answers ``added=False``.
        """
        body = {"user": user}
        return await self._call(Moderator, "POST", "/v1/moderators", json=body, idempotent=True)

    async def remove_moderator(self, user: str) -> bool:
        """``DELETE /v1/moderators/{user}``: whether ``user`` was a moderator (and is no more)."""
        path = f"/v1/moderators/{_seg(user)}"
        return (await self._call(ModeratorRemoved, "DELETE", path, idempotent=True)).removed

    async def moderators(self) -> list[Moderator]:
        """``GET /v1/moderators``: the moderators the caller named."""
        page = await self._call(ModeratorList, "GET", "/v1/moderators", idempotent=True)
        return page.moderators

    async def block(self, stream: str, user: str, *, scope: str = "stream") -> Block:
        """``POST /v1/streams/{id}/blocks``: refuse ``user``'s spends and comments.

        ``scope``: ``"stream"`` (this stream) or ``"creator"`` (every stream
        of its creator). Once this returns, no spend of ``user`` in the scope
        is debited (code ``blocked``). Idempotent: ``added=False`` on a repeat.
        """
        path = f"/v1/streams/{_seg(stream)}/blocks"
        body = {"user": user, "scope": scope}
        return await self._call(Block, "POST", path, json=body, idempotent=True)

    async def unblock(self, stream: str, user: str, *, scope: str | None = None) -> list[Block]:
        """``DELETE /v1/streams/{id}/blocks/{user}``: lift ``user``'s blocks; those lifted.

        ``scope``: lift only the ``"stream"`` or the ``"creator"`` block (default: both).
        """
        path = f"/v1/streams/{_seg(stream)}/blocks/{_seg(user)}"
        params: dict[str, str | int] = {} if scope is None else {"scope": scope}
        answer = await self._call(Unblocked, "DELETE", path, params=params, idempotent=True)
        return answer.lifted

    async def blocks(self, stream: str) -> list[Block]:
        """``GET /v1/streams/{id}/blocks``: who is blocked in this stream (either scope)."""
        path = f"/v1/streams/{_seg(stream)}/blocks"
        page = await self._call(BlockList, "GET", path, idempotent=True)
        return page.blocks

    async def hide_event(self, stream: str, event: str) -> HiddenEvent:
        """``POST /v1/streams/{id}/events/{event}/hide``: take a comment or highlight down.

        Overlays get a ``hidden`` room event (its id is the answer's
        ``event``); money is unchanged; hiding twice is harmless.
        """
        path = f"/v1/streams/{_seg(stream)}/events/{_seg(event)}/hide"
        return await self._call(HiddenEvent, "POST", path, idempotent=True)

    # ------------------------------------------------------------------------- webhooks

    async def subscribe_webhook(self, url: str, kinds: list[str]) -> WebhookSubscription:
        """``POST /v1/webhook-subscriptions`` (a creator): deliver ``kinds`` events to ``url``.

        The answer's ``secret`` signs every delivery (check them with
        :func:`~gifting_client.signatures.verify_signature`); keep it, it is
        shown only here. Not idempotent: never retried once sent.
        """
        body = {"url": url, "kinds": kinds}
        return await self._call(
            WebhookSubscription, "POST", "/v1/webhook-subscriptions", json=body, idempotent=False
        )

    async def webhook_subscriptions(self) -> list[WebhookSubscription]:
        """``GET /v1/webhook-subscriptions``: the caller's subscriptions (without secrets)."""
        page = await self._call(
            SubscriptionList, "GET", "/v1/webhook-subscriptions", idempotent=True
        )
        return page.subscriptions

    async def webhook_subscription(self, subscription: str) -> WebhookSubscription:
        """``GET /v1/webhook-subscriptions/{id}``: one subscription."""
        path = f"/v1/webhook-subscriptions/{_seg(subscription)}"
        return await self._call(WebhookSubscription, "GET", path, idempotent=True)

    async def delete_webhook_subscription(self, subscription: str) -> None:
        """``DELETE /v1/webhook-subscriptions/{id}``: stop delivering to it."""
        path = f"/v1/webhook-subscriptions/{_seg(subscription)}"
        await self._call_empty("DELETE", path, idempotent=True)

    async def webhook_deliveries(self, subscription: str) -> list[WebhookDelivery]:
        """``GET /v1/webhook-subscriptions/{id}/deliveries``: attempts and receivers' answers."""
        path = f"/v1/webhook-subscriptions/{_seg(subscription)}/deliveries"
        page = await self._call(DeliveryList, "GET", path, idempotent=True)
        return page.deliveries

    # ------------------------------------------------------------------------- videos

    async def create_video(self, title: str) -> VideoInfo:
        """``POST /v1/videos`` (role ``creator``): register a published video; 201 with its id.

        Not idempotent: a lost answer raises ``OutcomeUnknown`` and is never
        retried (a retry would register a second video).
        """
        return await self._call(
            VideoInfo, "POST", "/v1/videos", json={"title": title}, idempotent=False
        )

    async def video(self, video: str) -> VideoInfo:
        """``GET /v1/videos/{id}``: a video's public view (totals, top gifters)."""
        return await self._call(VideoInfo, "GET", f"/v1/videos/{_seg(video)}", idempotent=True)

    get_video = video

    async def gift_video(
        self, video: str, gift: str, count: int = 1, *, id: str | None = None
    ) -> VideoGift:
        """``POST /v1/videos/{id}/gifts``: send ``count`` of ``gift`` on a video (by ``id``).

        Without ``id`` a fresh one is generated and kept across retries. Send
        the same ``id`` again (after :class:`~gifting_client.errors.OutcomeUnknown`)
        to learn the outcome without paying twice; a failed id stays failed.
        """
        client_id = id or new_client_id("v")
        response = await self._send(
            "POST",
            f"/v1/videos/{_seg(video)}/gifts",
            json={"id": client_id, "gift": gift, "count": count},
            idempotent=True,
            id=client_id,
        )
        sent = self._decode(response, VideoGift)
        replayed = response.headers.get(_REPLAYED_HEADER, "").lower() == "true"
        return msgspec.structs.replace(sent, id=sent.id or client_id, replayed=replayed)

    # ------------------------------------------------------------------------- dev mode

    async def dev_token(
        self, user: str, *, name: str | None = None, creator: bool = False
    ) -> DevToken:
        """``POST /v1/dev/token`` (only when the server runs with ``GIFTING_DEV=1``)."""
        body: dict[str, Any] = {"user": user, "creator": creator}
        if name is not None:
            body["name"] = name
        return await self._call(DevToken, "POST", "/v1/dev/token", json=body, idempotent=True)

    async def dev_purchase(self, package: str) -> DevPurchase:
        """``POST /v1/dev/purchase`` (``GIFTING_DEV=1``): credit ``package`` as if paid.

        Each call is a new purchase, so it is never retried once sent.
        """
        body = {"package": package}
        return await self._call(
            DevPurchase, "POST", "/v1/dev/purchase", json=body, idempotent=False
        )
