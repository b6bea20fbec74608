"""A blocking facade of :class:`~gifting_client.api.ApiClient`, for scripts and sync code.

::

    with SyncApiClient("http://127.0.0.1:8000", token) as api:
        print(api.wallet().coins)
        for entry in api.history():
            ...

Each call runs the async client's call to completion on a private event loop
(:class:`asyncio.Runner`) owned by this object, so the retries, typed
answers and errors are exactly the async client's. Use it from synchronous
code only: calling it inside a running event loop raises ``RuntimeError``
(use :class:`ApiClient` there). Not thread-safe: one client per thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar

from gifting_client.api import ApiClient
from gifting_client.api_types import (
    BadgePurchase,
    Block,
    Cashout,
    Catalog,
    CreatedStream,
    DevPurchase,
    DevToken,
    HiddenEvent,
    HistoryEntry,
    HistoryPage,
    Moderator,
    OverlayAccess,
    StreamGoal,
    StreamGuests,
    StreamInfo,
    VideoGift,
    VideoInfo,
    Wallet,
    WebhookDelivery,
    WebhookSubscription,
)

__all__ = ["SyncApiClient"]

_T = TypeVar("_T")


class SyncApiClient:
    """Blocking :class:`ApiClient`: the same arguments, the same methods without ``await``."""

    def __init__(self, base_url: str, token: str | None = None, **options: Any) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("SyncApiClient cannot run inside an event loop: use ApiClient")
        self._runner = asyncio.Runner()
        self._api = self._runner.run(self._open(base_url, token, options))

    @staticmethod
    async def _open(base_url: str, token: str | None, options: dict[str, Any]) -> ApiClient:
        return ApiClient(base_url, token, **options)

    @property
    def token(self) -> str | None:
        """The bearer token sent with every call (settable)."""
        return self._api.token

    @token.setter
    def token(self, value: str | None) -> None:
        self._api.token = value

    def __enter__(self) -> SyncApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool and the private event loop."""
        try:
            self._runner.run(self._api.aclose())
        finally:
            self._runner.close()

    def _run(self, call: Coroutine[Any, Any, _T]) -> _T:
        return self._runner.run(call)

    def history(
        self, *, page_size: int | None = None, cursor: str | None = None
    ) -> Iterator[HistoryEntry]:
        """Blocking :meth:`ApiClient.history`: every ledger event, newest first, page by page."""
        while True:
            page = self.history_page(limit=page_size, cursor=cursor)
            yield from page.entries
            if page.next is None:
                return
            cursor = page.next

    def catalog(self) -> Catalog:
        """Blocking :meth:`ApiClient.catalog`."""
        return self._run(self._api.catalog())

    def wallet(self) -> Wallet:
        """Blocking :meth:`ApiClient.wallet`."""
        return self._run(self._api.wallet())

    def set_budget(self, monthly: int | None) -> Wallet:
        """Blocking :meth:`ApiClient.set_budget`."""
        return self._run(self._api.set_budget(monthly))

    def history_page(self, *, limit: int | None = None, cursor: str | None = None) -> HistoryPage:
        """Blocking :meth:`ApiClient.history_page`."""
        return self._run(self._api.history_page(limit=limit, cursor=cursor))

    def buy_badge(self, badge: str, *, id: str | None = None) -> BadgePurchase:
        """Blocking :meth:`ApiClient.buy_badge`."""
        return self._run(self._api.buy_badge(badge, id=id))

    def request_cashout(self, diamonds: int, *, idempotency_key: str | None = None) -> Cashout:
        """Blocking :meth:`ApiClient.request_cashout`."""
        return self._run(self._api.request_cashout(diamonds, idempotency_key=idempotency_key))

    def cashouts(self, *, limit: int | None = None) -> list[Cashout]:
        """Blocking :meth:`ApiClient.cashouts`."""
        return self._run(self._api.cashouts(limit=limit))

    def cashout(self, cashout: str) -> Cashout:
        """Blocking :meth:`ApiClient.cashout`."""
        return self._run(self._api.cashout(cashout))

    def cancel_cashout(self, cashout: str) -> Cashout:
        """Blocking :meth:`ApiClient.cancel_cashout`."""
        return self._run(self._api.cancel_cashout(cashout))

    def create_stream(self, title: str) -> CreatedStream:
        """Blocking :meth:`ApiClient.create_stream`."""
        return self._run(self._api.create_stream(title))

    def stream(self, stream: str) -> StreamInfo:
        """Blocking :meth:`ApiClient.stream`."""
        return self._run(self._api.stream(stream))

    def overlay_access(self, stream: str) -> OverlayAccess:
        """Blocking :meth:`ApiClient.overlay_access`."""
        return self._run(self._api.overlay_access(stream))

    def end_stream(self, stream: str) -> StreamInfo:
        """Blocking :meth:`ApiClient.end_stream`."""
        return self._run(self._api.end_stream(stream))

    def set_goal(self, stream: str, target: int, gift: str | None = None) -> StreamGoal:
        """Blocking :meth:`ApiClient.set_goal`."""
        return self._run(self._api.set_goal(stream, target, gift))

    def set_guests(self, stream: str, guests: Sequence[str | tuple[str, str]]) -> StreamGuests:
        """Blocking :meth:`ApiClient.set_guests`."""
        return self._run(self._api.set_guests(stream, guests))

    def add_moderator(self, user: str) -> Moderator:
        """Blocking :meth:`ApiClient.add_moderator`."""
        return self._run(self._api.add_moderator(user))

    def remove_moderator(self, user: str) -> bool:
        """Blocking :meth:`ApiClient.remove_moderator`."""
        return self._run(self._api.remove_moderator(user))

    def moderators(self) -> list[Moderator]:
        """Blocking :meth:`ApiClient.moderators`."""
        return self._run(self._api.moderators())

    def block(self, stream: str, user: str, *, scope: str = "stream") -> Block:
        """Blocking :meth:`ApiClient.block`."""
        return self._run(self._api.block(stream, user, scope=scope))

    def unblock(self, stream: str, user: str, *, scope: str | None = None) -> list[Block]:
        """Blocking :meth:`ApiClient.unblock`."""
        return self._run(self._api.unblock(stream, user, scope=scope))

    def blocks(self, stream: str) -> list[Block]:
        """Blocking :meth:`ApiClient.blocks`."""
        return self._run(self._api.blocks(stream))

    def hide_event(self, stream: str, event: str) -> HiddenEvent:
        """Blocking :meth:`ApiClient.hide_event`."""
        return self._run(self._api.hide_event(stream, event))

    def subscribe_webhook(self, url: str, kinds: list[str]) -> WebhookSubscription:
        """Blocking :meth:`ApiClient.subscribe_webhook`."""
        return self._run(self._api.subscribe_webhook(url, kinds))

    def webhook_subscriptions(self) -> list[WebhookSubscription]:
        """Blocking :meth:`ApiClient.webhook_subscriptions`."""
        return self._run(self._api.webhook_subscriptions())

    def webhook_subscription(self, subscription: str) -> WebhookSubscription:
        """Blocking :meth:`ApiClient.webhook_subscription`."""
        return self._run(self._api.webhook_subscription(subscription))

    def delete_webhook_subscription(self, subscription: str) -> None:
        """Blocking :meth:`ApiClient.delete_webhook_subscription`."""
        self._run(self._api.delete_webhook_subscription(subscription))

    def webhook_deliveries(self, subscription: str) -> list[WebhookDelivery]:
        """Blocking :meth:`ApiClient.webhook_deliveries`."""
        return self._run(self._api.webhook_deliveries(subscription))

    def create_video(self, title: str) -> VideoInfo:
        """Blocking :meth:`ApiClient.create_video`."""
        return self._run(self._api.create_video(title))

    def video(self, video: str) -> VideoInfo:
        """Blocking :meth:`ApiClient.video`."""
        return self._run(self._api.video(video))

    get_video = video

    def gift_video(
        self, video: str, gift: str, count: int = 1, *, id: str | None = None
    ) -> VideoGift:
        """Blocking :meth:`ApiClient.gift_video`."""
        return self._run(self._api.gift_video(video, gift, count, id=id))

    def dev_token(self, user: str, *, name: str | None = None, creator: bool = False) -> DevToken:
        """Blocking :meth:`ApiClient.dev_token`."""
        return self._run(self._api.dev_token(user, name=name, creator=creator))

    def dev_purchase(self, package: str) -> DevPurchase:
        """Blocking :meth:`ApiClient.dev_purchase`."""
        return self._run(self._api.dev_purchase(package))
