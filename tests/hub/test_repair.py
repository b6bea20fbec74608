"""A hub that died after the debit: the persister credits the creator and emits the event."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys

import pytest

from gifting.core.pricing import price_gift
from gifting.store.ledger import SpendOrder
from tests.hub.conftest import decode, recv, serve

pytestmark = pytest.mark.cluster


async def test_persister_repairs_credit_and_room_event_of_an_unsettled_spend(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    async with serve(
        redis_url, database_url, key_prefix, with_persister=True,
        GIFTING_PERSISTER_IN_PROCESS=True, GIFTING_PERSISTER_CLAIM_IDLE_MS=200,
    ) as h:  # fmt: skip
        stream, key = await h.stream("rita")
        await h.fund("sam")
        async with h.overlay(stream, key) as ov:
            assert (await recv(ov))["op"] == "snapshot"
            # The debit happened (as in a hub that then crashed before its settle step).
            priced = price_gift(h.state.catalog, "doughnut", 2)
            order = SpendOrder("sam", "Sam", "lost-1", priced, stream, "rita")
            result = await h.state.ledger.spend(order, live=True)
            async with asyncio.timeout(10):
                while True:
                    msg = decode(await ov.recv())
                    if msg.get("kind") == "gift":
                        break
            assert msg["event"] == result.event
            assert msg["sender"]["id"] == "sam"
            assert msg["count"] == 2
        # The creator was credited once, and the ledger in PostgreSQL has both events.
        rita = await h.state.ledger.wallet("rita")
        assert rita.received == priced.coins
        assert rita.diamonds == priced.coins // 2
        pool = h.state.pg_pool
        assert pool is not None
        async with asyncio.timeout(10):
            while True:
                n = await pool.fetchval(
                    "SELECT count(*) FROM ledger_events WHERE event_id = ANY($1::text[])",
                    [result.event, "c" + result.event[1:]],
                )
                if n == 2:
                    break
                await asyncio.sleep(0.1)


async def test_standalone_persister_repairs_the_room_event_of_a_spend_whose_hub_died(
    redis_url: str, db_url: str, key_prefix: str
) -> None:
    """`gifting persist` as its own process (no hub in it) still emits to the room.

    The debit below is what a hub runs before it is killed between its debit
    and its emission: spend.lua ran, neither credit.lua nor emit.lua did. The
    overlay is on another hub, with no persister in-process.
    """
    async with serve(redis_url, db_url, key_prefix, GIFTING_PERSISTER_IN_PROCESS=False) as h:
        stream, key = await h.stream("rosa")
        await h.fund("sid")
        env = dict(os.environ)
        env.update(
            REDIS_URL=redis_url, DATABASE_URL=db_url, GIFTING_KEY_PREFIX=key_prefix,
            GIFTING_PERSISTER_CLAIM_IDLE_MS="200",
        )  # fmt: skip
        persister = subprocess.Popen(  # noqa: ASYNC220 - started once, stopped below
            [sys.executable, "-c", "from gifting.cli import main; main()", "persist"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            async with h.overlay(stream, key) as ov:
                assert (await recv(ov))["op"] == "snapshot"
                priced = price_gift(h.state.catalog, "doughnut", 2)
                order = SpendOrder("sid", "Sid", "lost-2", priced, stream, "rosa")
                result = await h.state.ledger.spend(order, live=True)
                gifts = []
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        while True:
                            msg = decode(await ov.recv())
                            if msg.get("kind") == "gift":
                                gifts.append(msg)
            assert persister.poll() is None, persister.stderr and persister.stderr.read()
            assert [g["event"] for g in gifts] == [result.event]  # shown, and once
            rosa = await h.state.ledger.wallet("rosa")
            assert rosa.received == priced.coins  # credited once
        finally:
            persister.send_signal(signal.SIGTERM)
            persister.wait(15)
