"""ApiClient against a real server (real Redis, real PostgreSQL, the persister in process).

Every method with a route today is called for real, with its refusals; the
retries are driven by real network faults: a TCP proxy that loses the
server's answers, and a front that answers 503/429 before passing requests
on.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from types import TracebackType
from typing import Any

import httpx
import msgspec
import pytest
from gifting_client import (
    SIGNATURE_HEADER,
    ApiClient,
    Backoff,
    BadgePurchase,
    BadRequest,
    Blocked,
    Cashout,
    Catalog,
    Conflict,
    ConnectionFailed,
    CreatedStream,
    DevPurchase,
    DevToken,
    Forbidden,
    HistoryPage,
    InsufficientFunds,
    InvalidSignature,
    NotFound,
    OutcomeUnknown,
    OverlayAccess,
    RateLimited,
    StreamGoal,
    StreamGoals,
    StreamInfo,
    SyncApiClient,
    Unauthorized,
    Unavailable,
    UnexpectedResponse,
    UnknownItem,
    VideoGift,
    VideoInfo,
    ViewerClient,
    Wallet,
    sign,
    verify_signature,
)
from gifting_client.api_types import CashoutList
from tcp_proxy import TcpProxy

from gifting.api.signatures import sign as server_sign
from gifting.api.signatures import verify as server_verify
from gifting.persister.progress import wait_caught_up
from tests.hub.conftest import HubServer

FAST = Backoff(initial=0.05, maximum=0.2)


def base(h: HubServer) -> str:
    return f"http://127.0.0.1:{h.port}"


def user() -> str:
    """A user id no other test uses (the server lives for the whole module)."""
    return f"u{secrets.token_hex(4)}"


def client(h: HubServer, who: str | None = None, creator: bool = False, **kw: object) -> ApiClient:
    token = None if who is None else h.token(who, who.title(), creator=creator)
    return ApiClient(base(h), token, backoff=FAST, **kw)  # type: ignore[arg-type]


async def caught_up(h: HubServer) -> None:
    assert await wait_caught_up(h.state.redis, h.state.keys, 20)


# ----------------------------------------------------------------------------- catalog, wallet


async def test_catalog_is_typed_and_is_the_servers(server: HubServer) -> None:
    async with client(server) as api:
        catalog = await api.catalog()
    assert isinstance(catalog, Catalog)
    assert [g.id for g in catalog.gifts] == list(server.state.catalog.gifts)
    rose = catalog.gift("rose")
    assert (rose.coins, rose.tier, rose.streakable) == (1, 1, True)
    p = catalog.package("coins_700")
    assert (p.coins, p.price.amount, p.price.currency) == (700, 999, "USD")
    assert catalog.creator_share_bps == 5000
    assert catalog.cashout_min_diamonds == server.state.catalog.cashout_min_diamonds
    assert {b.id for b in catalog.badges} >= {"supporter", "vip"}


async def test_dev_token_and_purchase_then_the_wallet(server: HubServer) -> None:
    who = user()
    async with client(server) as anonymous:
        dev = await anonymous.dev_token(who, name="Dee")
        assert dev.user == who and dev.roles == []
        with pytest.raises(Unauthorized) as refused:
            await anonymous.wallet()
        assert refused.value.status == 401
    async with ApiClient(base(server), dev.token, backoff=FAST) as api:
        fresh = await api.wallet()
        assert isinstance(fresh, Wallet)
        assert (fresh.user, fresh.coins, fresh.diamonds) == (who, 0, 0)
        assert fresh.budget.monthly is None
        bought = await api.dev_purchase("coins_350")
        assert (bought.coins, bought.balance) == (350, 350)
        with pytest.raises(UnknownItem):
            await api.dev_purchase("coins_1")
        assert (await api.wallet()).coins == 350


async def test_a_forged_token_is_unauthorized(server: HubServer) -> None:
    async with ApiClient(base(server), "not.a.jwt", backoff=FAST) as api:
        with pytest.raises(Unauthorized):
            await api.wallet()


async def test_budget_set_cleared_and_bad_values_change_nothing(server: HubServer) -> None:
    who = user()
    async with client(server, who) as api:
        wallet = await api.set_budget(1_000)
        assert wallet.budget.monthly == 1_000 and wallet.budget.spent == 0
        assert wallet.budget.period == time.strftime("%Y-%m", time.gmtime())
        for bad in (-1, 2**63):
            with pytest.raises(BadRequest) as refused:
                await api.set_budget(bad)
            assert refused.value.status == 400 and refused.value.code == "bad_request"
        assert (await api.wallet()).budget.monthly == 1_000
        assert (await api.set_budget(None)).budget.monthly is None


# ----------------------------------------------------------------------------- badges


async def test_badge_is_paid_once_replays_and_conflicts(server: HubServer) -> None:
    who = user()
    async with client(server, who) as api:
        await api.dev_purchase("coins_700")
        first = await api.buy_badge("supporter", id="badge-1")
        assert (first.balance, first.badge, first.replayed) == (600, "supporter", False)
        again = await api.buy_badge("supporter", id="badge-1")
        assert again.replayed and (again.event, again.balance) == (first.event, 600)
        with pytest.raises(Conflict) as conflict:
            await api.buy_badge("vip", id="badge-1")
        assert conflict.value.status == 409 and conflict.value.id == "badge-1"
        generated = await api.buy_badge("super_fan")
        assert generated.id and generated.id.startswith("b-") and generated.balance == 100
        with pytest.raises(UnknownItem):
            await api.buy_badge("crown")
        wallet = await api.wallet()
        assert wallet.coins == 100 and wallet.badge == "super_fan"


async def test_a_badge_refused_for_funds_stays_refused_after_a_top_up(server: HubServer) -> None:
    async with client(server, user()) as api:
        with pytest.raises(InsufficientFunds) as broke:
            await api.buy_badge("vip", id="poor-1")
        assert broke.value.status == 402 and broke.value.id == "poor-1"
        await api.dev_purchase("coins_3500")
        with pytest.raises(InsufficientFunds):
            await api.buy_badge("vip", id="poor-1")
        assert (await api.buy_badge("vip", id="poor-2")).balance == 1500


async def test_a_badge_whose_answer_is_lost_is_retried_and_paid_once(server: HubServer) -> None:
    who = user()
    async with client(server, who) as api:
        await api.dev_purchase("coins_700")
    async with TcpProxy(server.port) as proxy:
        proxy.swallow = True

        async def restore() -> None:  # once the first answer is lost, let the next through
            while proxy.swallowed == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            proxy.swallow = False

        helper = asyncio.get_running_loop().create_task(restore())
        token = server.token(who)
        async with ApiClient(
            f"http://127.0.0.1:{proxy.port}", token, timeout=1.0, backoff=FAST
        ) as api:
            bought = await api.buy_badge("supporter", id="lossy-1")
        await helper
    assert bought.replayed and bought.balance == 600 and proxy.swallowed > 0
    async with client(server, who) as api:
        assert (await api.wallet()).coins == 600


async def test_a_lost_answer_to_a_non_idempotent_call_is_outcome_unknown(server: HubServer) -> None:
    who = user()
    async with TcpProxy(server.port) as proxy:
        proxy.swallow = True
        token = server.token(who, creator=True)
        async with ApiClient(f"http://127.0.0.1:{proxy.port}", token, timeout=0.5) as api:
            with pytest.raises(OutcomeUnknown):
                await api.dev_purchase("coins_70")
    async with client(server, who) as api:  # sent once, not retried: paid exactly once
        assert (await api.wallet()).coins == 70


async def test_an_unreachable_server_is_connection_failed(server: HubServer) -> None:
    async with TcpProxy(server.port) as proxy:
        port = proxy.port
    async with ApiClient(f"http://127.0.0.1:{port}", attempts=3, backoff=FAST) as api:
        with pytest.raises(ConnectionFailed):
            await api.catalog()


# ----------------------------------------------------------------------------- 503 / 429 front


class FlakyFront:
    """A real HTTP front that refuses the first ``refuse`` requests, then pipes to ``upstream``.

    Each refusal is a whole HTTP answer (``status`` with ``Retry-After`` and a
    ``{"code","message"}`` body, or HTML when ``html``) on a connection it closes.
    """

    def __init__(
        self,
        upstream: int,
        refuse: int,
        status: int = 503,
        retry_after: str = "0",
        html: bool = False,
    ) -> None:
        self.upstream, self.refuse, self.status = upstream, refuse, status
        self.retry_after, self.html = retry_after, html
        self.requests = 0
        self.refused_at: list[float] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> FlakyFront:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        self.requests += 1
        if self.requests <= self.refuse:
            self.refused_at.append(time.monotonic())
            code = "rate_limited" if self.status == 429 else "unavailable"
            payload = (
                b"<html>bad gateway</html>"
                if self.html
                else json.dumps({"code": code, "message": "try later"}).encode()
            )
            writer.write(
                f"HTTP/1.1 {self.status} X\r\nRetry-After: {self.retry_after}\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        up_writer.write(head.replace(b"keep-alive", b"close") + body)
        await up_writer.drain()
        writer.write(await up_reader.read())
        await writer.drain()
        writer.close()
        up_writer.close()


async def test_503_is_retried_for_an_idempotent_call_honouring_retry_after(
    server: HubServer,
) -> None:
    who = user()
    async with client(server, who) as api:
        await api.dev_purchase("coins_700")
    async with FlakyFront(server.port, refuse=2, retry_after="1") as front:
        token = server.token(who)
        async with ApiClient(f"http://127.0.0.1:{front.port}", token, backoff=FAST) as api:
            bought = await api.buy_badge("supporter", id="flaky-1")
    assert front.requests == 3 and not bought.replayed and bought.balance == 600
    waits = [b - a for a, b in zip(front.refused_at, front.refused_at[1:], strict=False)]
    assert waits and all(w >= 0.95 for w in waits)  # Retry-After: 1, not the 50 ms backoff


async def test_429_is_retried_and_raised_typed_when_attempts_run_out(server: HubServer) -> None:
    async with (
        FlakyFront(server.port, refuse=10, status=429) as front,
        ApiClient(f"http://127.0.0.1:{front.port}", attempts=3, backoff=FAST) as api,
    ):
        with pytest.raises(RateLimited) as limited:
            await api.catalog()
    assert limited.value.status == 429 and front.requests == 3


async def test_a_non_idempotent_call_is_not_retried_on_503(server: HubServer) -> None:
    async with FlakyFront(server.port, refuse=1) as front:
        token = server.token(user(), creator=True)
        async with ApiClient(f"http://127.0.0.1:{front.port}", token, backoff=FAST) as api:
            with pytest.raises(Unavailable):
                await api.create_stream("once")
    assert front.requests == 1


async def test_a_proxy_page_without_json_maps_by_status(server: HubServer) -> None:
    async with (
        FlakyFront(server.port, refuse=1, status=502, html=True) as front,
        ApiClient(f"http://127.0.0.1:{front.port}", backoff=FAST) as api,
    ):
        assert isinstance(await api.catalog(), Catalog)  # retried past the 502
    assert front.requests == 2
    async with (
        FlakyFront(server.port, refuse=1, status=418, html=True) as front,
        ApiClient(f"http://127.0.0.1:{front.port}", backoff=FAST) as api,
    ):
        with pytest.raises(UnexpectedResponse) as odd:
            await api.catalog()
    assert odd.value.status == 418 and b"bad gateway" in odd.value.body


# ----------------------------------------------------------------------------- history


async def test_history_pages_newest_first_without_gaps_or_repeats(server: HubServer) -> None:
    who = user()
    async with client(server, who) as api:
        await api.dev_purchase("coins_700")
        await api.dev_purchase("coins_350")
        events = [(await api.buy_badge("supporter")).event for _ in range(3)]
        await caught_up(server)
        page = await api.history_page(limit=2)
        assert len(page.entries) == 2 and page.next is not None
        entries = [e async for e in api.history(page_size=2)]
        assert [e.event for e in entries[:3]] == events[::-1]  # newest first
        assert len({e.event for e in entries}) == len(entries) == 5
        assert [e.type for e in entries] == ["spend"] * 3 + ["purchase"] * 2
        assert entries[0].coins == -100 and entries[0].item == "supporter"
        assert entries[-1].coins == 700 and entries[-1].package == "coins_700"
        assert sum(e.coins for e in entries) == (await api.wallet()).coins == 750
        with pytest.raises(BadRequest):
            await api.history_page(cursor="not-a-cursor")
        with pytest.raises(BadRequest):
            await api.history_page(limit=0)


# ----------------------------------------------------------------------------- streams


async def test_stream_create_read_goal_end(server: HubServer) -> None:
    creator = user()
    async with client(server, creator, creator=True) as api, client(server, user()) as other:
        created = await api.create_stream("hello")
        assert isinstance(created, CreatedStream) and created.live and created.title == "hello"
        assert created.overlay_key and created.stream in created.overlay_url
        assert (await api.overlay_access(created.stream)).overlay_key == created.overlay_key
        with pytest.raises(Forbidden):
            await other.overlay_access(created.stream)
        with pytest.raises(Forbidden) as not_creator:
            await other.create_stream("nope")
        assert not_creator.value.status == 403
        goal = await api.set_goal(created.stream, 500)
        assert goal.goal is not None and (goal.goal.target, goal.goal.progress) == (500, 0)
        with pytest.raises(BadRequest):
            await api.set_goal(created.stream, 0)
        goals = await api.set_goals(created.stream, [
            {"id": "a", "title": "Roses", "target": 50, "gift": "rose", "steps": [10]},
            {"id": "b", "target": 900},
        ])  # fmt: skip
        assert [(g.id, g.target, g.steps, g.progress) for g in goals.goals] == [
            ("a", 50, [10], 0), ("b", 900, [], 0),
        ]  # fmt: skip
        with pytest.raises(BadRequest):
            await api.set_goals(created.stream, [{"id": "a", "target": 5, "steps": [5]}])
        assert [g.id for g in (await other.stream(created.stream)).goals] == ["a", "b"]
        with pytest.raises(Forbidden):
            await other.set_goal(created.stream, 5)
        with pytest.raises(Forbidden):
            await other.end_stream(created.stream)
        info = await other.stream(created.stream)
        assert isinstance(info, StreamInfo) and info.creator == creator and info.live
        ended = await api.end_stream(created.stream)
        assert not ended.live and not (await api.end_stream(created.stream)).live
        with pytest.raises(NotFound) as missing:
            await other.stream("no-such-stream")
        assert missing.value.status == 404


# ----------------------------------------------------------------------------- cash-outs


async def creator_with_diamonds(server: HubServer) -> str:
    """A creator who received a 7,000-coin gift: 3,500 diamonds."""
    creator, fan = user(), user()
    async with client(server, creator, creator=True) as api, client(server, fan) as viewer:
        stream = (await api.create_stream("earn")).stream
        await viewer.dev_purchase("coins_7000")
    async with ViewerClient(f"ws://127.0.0.1:{server.port}", stream, server.token(fan)) as ws:
        await ws.send_gift("sports_car")
    async with client(server, creator) as api, asyncio.timeout(10):
        while (await api.wallet()).diamonds != 3500:  # noqa: ASYNC110 - credited after the ack
            await asyncio.sleep(0.02)
    return creator


async def test_cashout_idempotent_by_key_listed_and_read(server: HubServer) -> None:
    creator = await creator_with_diamonds(server)
    async with client(server, creator) as api, client(server, user()) as other:
        held = await api.request_cashout(2000, idempotency_key="pay-1")
        assert isinstance(held, Cashout)
        assert (held.status, held.diamonds, held.id) == ("held", 2000, "pay-1")
        assert (held.amount.amount, held.amount.currency) == (1000, "USD")
        again = await api.request_cashout(2000, idempotency_key="pay-1")
        assert again.cashout == held.cashout
        with pytest.raises(Conflict):
            await api.request_cashout(2002, idempotency_key="pay-1")
        with pytest.raises(InsufficientFunds):
            await api.request_cashout(2000)
        with pytest.raises(BadRequest):
            await api.request_cashout(0)
        wallet = await api.wallet()
        assert (wallet.diamonds, wallet.diamonds_held) == (1500, 2000)
        assert [c.cashout for c in await api.cashouts()] == [held.cashout]
        assert (await api.cashout(held.cashout)).status == "held"
        with pytest.raises(NotFound):
            await other.cashout(held.cashout)  # someone else's: 404, ids do not leak
        with pytest.raises(NotFound):
            await api.cashout("co00-nothing")


async def test_cashout_cancel_returns_the_diamonds(server: HubServer) -> None:
    creator = await creator_with_diamonds(server)
    async with client(server, creator) as api, client(server, user()) as other:
        held = await api.request_cashout(2000)
        with pytest.raises(NotFound):
            await other.cancel_cashout(held.cashout)
        cancelled = await api.cancel_cashout(held.cashout)
        assert cancelled.cashout == held.cashout and cancelled.status == "cancelled"
        assert (await api.cancel_cashout(held.cashout)).status == "cancelled"  # idempotent
        wallet = await api.wallet()
        assert (wallet.diamonds, wallet.diamonds_held) == (3500, 0)

        # Once the provider said it is paying, the creator can no longer cancel.
        paying = await api.request_cashout(2000)
        body = json.dumps({"cashout": paying.cashout, "status": "processing"}).encode()
        secret = server.state.settings.webhook_secret
        async with httpx.AsyncClient(base_url=base(server)) as provider:
            answer = await provider.post(
                "/v1/webhooks/payouts", content=body, headers={SIGNATURE_HEADER: sign(secret, body)}
            )
            assert answer.status_code == 200
        with pytest.raises(Conflict):
            await api.cancel_cashout(paying.cashout)
        assert (await api.cashout(paying.cashout)).status == "processing"


# ----------------------------------------------------------------------------- moderation


async def test_moderators_named_listed_removed(server: HubServer) -> None:
    creator, mod = user(), user()
    async with client(server, creator, creator=True) as api:
        named = await api.add_moderator(mod)
        assert (named.user, named.added) == (mod, True) and named.at
        assert (await api.add_moderator(mod)).added is False  # idempotent
        assert [m.user for m in await api.moderators()] == [mod]
        assert await api.remove_moderator(mod) is True
        assert await api.remove_moderator(mod) is False
        assert await api.moderators() == []
    async with client(server, user()) as viewer:
        with pytest.raises(Forbidden):
            await viewer.add_moderator(mod)


async def test_a_block_refuses_the_gifter_and_a_moderator_hides_a_comment(
    server: HubServer,
) -> None:
    creator, mod, fan = user(), user(), user()
    async with (
        client(server, creator, creator=True) as api,
        client(server, mod) as moderator,
        client(server, fan) as viewer,
    ):
        stream = (await api.create_stream("moderated")).stream
        await viewer.dev_purchase("coins_70")
        with pytest.raises(Forbidden):
            await moderator.block(stream, fan)
        await api.add_moderator(mod)
        async with ViewerClient(f"ws://127.0.0.1:{server.port}", stream, server.token(fan)) as ws:
            comment = await ws.send_comment("rude")
            hidden = await moderator.hide_event(stream, comment.event)
            assert hidden.target == comment.event and hidden.event != comment.event
            again = await moderator.hide_event(stream, comment.event)  # idempotent
            assert again.target == comment.event
            with pytest.raises(NotFound):
                await moderator.hide_event(stream, "e-no-such-event")
            block = await moderator.block(stream, fan, scope="stream")
            assert (block.user, block.scope, block.by, block.added) == (fan, "stream", mod, True)
            assert (await moderator.block(stream, fan)).added is False
            assert [(b.user, b.scope) for b in await moderator.blocks(stream)] == [(fan, "stream")]
            with pytest.raises(Blocked) as blocked:
                await ws.send_gift("rose")
            assert blocked.value.code == "blocked"
            with pytest.raises(BadRequest):
                await api.block(stream, fan, scope="planet")
            lifted = await api.unblock(stream, fan)
            assert [(b.user, b.scope) for b in lifted] == [(fan, "stream")]
            assert await api.unblock(stream, fan) == []
            assert await api.blocks(stream) == []
            await ws.send_gift("rose")
        assert (await viewer.wallet()).coins == 69
        with pytest.raises(NotFound):
            await api.unblock("no-such-stream", fan)


# ----------------------------------------------------------------------------- webhooks


async def test_webhook_subscription_lifecycle(server: HubServer) -> None:
    creator = user()
    async with client(server, creator, creator=True) as api:
        sub = await api.subscribe_webhook("https://example.invalid/hook", ["gift"])
        assert sub.id and sub.secret
        assert [s.id for s in await api.webhook_subscriptions()] == [sub.id]
        assert (await api.webhook_subscription(sub.id)).kinds == ["gift"]
        assert isinstance(await api.webhook_deliveries(sub.id), list)
        await api.delete_webhook_subscription(sub.id)
        assert await api.webhook_subscriptions() == []
        with pytest.raises(NotFound):
            await api.webhook_subscription(sub.id)
    async with client(server, user()) as viewer:
        with pytest.raises(Forbidden):
            await viewer.subscribe_webhook("https://example.invalid/hook", ["gift"])


# ----------------------------------------------------------------------------- sync facade


async def test_the_sync_facade_blocks_and_answers_the_same(server: HubServer) -> None:
    who = user()
    token = server.token(who)

    def spend() -> tuple[int, str]:
        with SyncApiClient(base(server), token, backoff=FAST) as api:
            api.dev_purchase("coins_350")
            api.set_budget(200)
            bought = api.buy_badge("supporter", id="sync-1")
            assert api.buy_badge("supporter", id="sync-1").replayed
            try:
                api.buy_badge("vip")
            except InsufficientFunds as exc:
                return bought.balance, exc.code
            raise AssertionError("the vip badge was not refused")

    def read() -> tuple[list[str], Wallet]:
        with SyncApiClient(base(server), token, backoff=FAST) as api:
            return [e.type for e in api.history(page_size=1)], api.wallet()

    balance, refused = await asyncio.to_thread(spend)
    assert balance == 250 and refused == "insufficient_funds"
    await caught_up(server)
    types, wallet = await asyncio.to_thread(read)
    assert types == ["spend", "purchase"]
    assert wallet.coins == 250 and wallet.budget.spent == 100
    with pytest.raises(RuntimeError):  # inside a running loop: use ApiClient
        SyncApiClient(base(server))


# ----------------------------------------------------------------------------- signatures


def test_signature_helper_agrees_with_the_server_both_ways() -> None:
    body = b'{"event":"e-1","kind":"gift"}'
    now = int(time.time())
    assert verify_signature("s3cret", server_sign("s3cret", body, now), body) == now
    assert server_verify("s3cret", sign("s3cret", body), body) >= now
    rotating = f"{sign('old', body, now)},v1={sign('s3cret', body, now).split('v1=')[1]}"
    assert verify_signature("s3cret", rotating, body) == now


@pytest.mark.parametrize(
    ("header", "body"),
    [
        (None, b"{}"),
        ("", b"{}"),
        ("v1=" + "0" * 64, b"{}"),
        ("t=abc,v1=" + "0" * 64, b"{}"),
        ("t=1,v1=zz", b"{}"),
        ("garbage", b"{}"),
        ("SIGNED", b'{"tampered":1}'),
        ("STALE", b"{}"),
        ("WRONG_SECRET", b"{}"),
    ],
)
def test_bad_signatures_are_refused(header: str | None, body: bytes) -> None:
    now = int(time.time())
    if header == "SIGNED":
        header = sign("s3cret", b"{}", now)
    elif header == "STALE":
        header = sign("s3cret", body, now - 301)
    elif header == "WRONG_SECRET":
        header = sign("other", body, now)
    with pytest.raises(InvalidSignature):
        verify_signature("s3cret", header, body)


def test_signature_tolerance_is_300_seconds_either_way() -> None:
    now = 1_764_000_000
    for t in (now - 300, now + 300):
        assert verify_signature("k", sign("k", b"x", t), b"x", now=now) == t
    for t in (now - 301, now + 301):
        with pytest.raises(InvalidSignature):
            verify_signature("k", sign("k", b"x", t), b"x", now=now)


def test_the_client_does_not_import_the_server() -> None:
    import subprocess
    import sys

    code = (
        "import sys, gifting_client\n"
        "print(any(m == 'gifting' or m.startswith('gifting.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- pure parts


def test_answers_decode_strictly() -> None:
    from gifting_client.api_types import Wallet as W
    from gifting_client.api_types import decode_answer

    good = (
        b'{"user":"a","coins":5,"diamonds":0,"new_field":1,'
        b'"budget":{"monthly":null,"spent":0,"period":"2026-12"}}'
    )
    assert decode_answer(good, W).coins == 5  # unknown fields are ignored
    for bad in (
        good.replace(b'"coins":5', b'"coins":"5"'),  # no str -> int
        good.replace(b'"coins":5', b'"coins":5.0'),  # no float money
        good.replace(b'"coins":5', b'"coins":true'),
        good.replace(b'"user":"a",', b""),  # a required field missing
    ):
        with pytest.raises(msgspec.ValidationError):
            decode_answer(bad, W)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    import email.utils

    from gifting_client.api import _retry_after

    def after(value: str | None) -> float | None:
        headers = {} if value is None else {"Retry-After": value}
        return _retry_after(httpx.Response(503, headers=headers))

    assert after("3") == 3.0 and after(None) is None and after("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (after(later) or 0) <= 31
    assert after(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (
            402,
            b'{"code":"insufficient_funds","message":"m"}',
            InsufficientFunds,
            "insufficient_funds",
        ),
        (403, b'{"code":"blocked","message":"m"}', Blocked, "blocked"),
        (409, b'{"code":"newer_code","message":"m"}', None, "newer_code"),
        (404, b"<html>", NotFound, "not_found"),
        (503, b"", Unavailable, "unavailable"),
        (500, b'{"code":"unavailable","message":"internal"}', Unavailable, "unavailable"),
    ],
)
def test_refusals_map_to_the_websocket_classes(
    status: int, body: bytes, cls: type | None, code: str
) -> None:
    from gifting_client import ErrorReply
    from gifting_client.api import _error

    error = _error(httpx.Response(status, content=body), "id-1")
    assert isinstance(error, ErrorReply)
    assert type(error) is (cls or ErrorReply)
    assert (error.code, error.status, error.id) == (code, status, "id-1")


# ----------------------------------------------------------------------------- the API document

# The client's answer type of each route whose answer the server's OpenAPI document describes.
_ANSWERS: list[tuple[type, str, str]] = [
    (Catalog, "get", "/v1/catalog"),
    (Wallet, "get", "/v1/wallet"),
    (Wallet, "put", "/v1/wallet/budget"),
    (HistoryPage, "get", "/v1/wallet/history"),
    (BadgePurchase, "post", "/v1/badges"),
    (Cashout, "post", "/v1/cashouts"),
    (CashoutList, "get", "/v1/cashouts"),
    (Cashout, "get", "/v1/cashouts/{}"),
    (CreatedStream, "post", "/v1/streams"),
    (StreamInfo, "get", "/v1/streams/{}"),
    (OverlayAccess, "get", "/v1/streams/{}/overlay"),
    (StreamInfo, "post", "/v1/streams/{}/end"),
    (StreamGoal, "put", "/v1/streams/{}/goal"),
    (StreamGoals, "put", "/v1/streams/{}/goals"),
    (DevToken, "post", "/v1/dev/token"),
    (DevPurchase, "post", "/v1/dev/purchase"),
    (VideoInfo, "post", "/v1/videos"),
    (VideoInfo, "get", "/v1/videos/{}"),
    (VideoGift, "post", "/v1/videos/{}/gifts"),
]
#: Fields the client reads that the document leaves out (history details vary by type).
_UNDOCUMENTED = {"HistoryEntry": "*", "BadgePurchase": {"replayed"}, "VideoGift": {"replayed"}}


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _json_types(document: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    schema = _resolve(document, schema)
    options = schema.get("anyOf") or schema.get("oneOf") or [schema]
    found: set[str] = set()
    for option in options:
        kind = _resolve(document, option).get("type")
        found.update([kind] if isinstance(kind, str) else kind or ["object"])
    return found


def _check(document: dict[str, Any], struct: type, schema: dict[str, Any], where: str) -> list[str]:
    """What in ``struct`` disagrees with the server's ``schema`` (empty: they agree)."""
    schema = _resolve(document, schema)
    properties, required = schema.get("properties", {}), set(schema.get("required", ()))
    skip = _UNDOCUMENTED.get(struct.__name__, set())
    problems = []
    for field in msgspec.inspect.type_info(struct).fields:  # type: ignore[attr-defined]
        if skip == "*" or field.encode_name in skip:
            continue
        name = f"{where}.{field.encode_name}"
        if field.encode_name not in properties:
            problems.append(f"{name}: the server does not document it")
            continue
        if field.required and field.encode_name not in required:
            problems.append(f"{name}: required by the client, optional on the server")
        prop = _resolve(document, properties[field.encode_name])
        for option in prop.get("anyOf", ()):  # T | None: the T
            if _resolve(document, option).get("type") != "null":
                prop = _resolve(document, option)
        kind = field.type
        if isinstance(kind, msgspec.inspect.UnionType):
            kind = next(t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType))
        if isinstance(kind, msgspec.inspect.ListType):
            kind, prop = kind.item_type, _resolve(document, prop).get("items", {})
        if isinstance(kind, msgspec.inspect.StructType):
            problems += _check(document, kind.cls, prop, name)
        elif type(kind).__name__.removesuffix("Type").lower() in ("int", "str", "bool"):
            want = {"Int": "integer", "Str": "string", "Bool": "boolean"}[
                type(kind).__name__.removesuffix("Type")
            ]
            if want not in _json_types(document, prop):
                problems.append(f"{name}: {want} here, {_json_types(document, prop)} there")
    return problems


async def test_answer_types_agree_with_the_servers_api_document(server: HubServer) -> None:
    async with httpx.AsyncClient(base_url=base(server)) as http:
        document = (await http.get("/openapi.json")).json()
    routes = {
        (method, re.sub(r"\{[^}]*\}", "{}", path)): op
        for path, ops in document["paths"].items()
        for method, op in ops.items()
    }
    problems = []
    for struct, method, path in _ANSWERS:
        answers = routes[(method, path)]["responses"]
        ok = next(v for k, v in answers.items() if k.startswith("2"))
        schema = ok["content"]["application/json"]["schema"]
        problems += _check(document, struct, schema, f"{method.upper()} {path} {struct.__name__}")
    assert problems == []
