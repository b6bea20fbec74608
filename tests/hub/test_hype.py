"""Room hype over real WebSockets: levels announced once, ``hype_ended`` once by any process.

A catalog of its own: 2 distinct gifters and 100 coins within 1 s start a
hype; the levels need 100, 200, 400 coins. Doughnut = 30 coins.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from gifting.core.hype import hype_instance
from gifting.core.pricing import price_gift
from gifting.store.ledger import SpendOrder
from tests.hub.conftest import HubServer, decode, encode, recv, serve

pytestmark = pytest.mark.cluster

HYPE = {"gifters": 2, "coins": 100, "window_s": 1, "levels": [100, 200, 400]}
KINDS = {"gift", "hype", "hype_ended", "comment"}


@pytest.fixture
def hype_catalog(tmp_path: Path) -> Path:
    data = json.loads(resources.files("gifting").joinpath("catalog.json").read_text())
    data["hype"] = HYPE
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data))
    return path


@contextlib.asynccontextmanager
async def hyped_hub(
    redis_url: str, db_url: str, key_prefix: str, catalog: Path, **kw: Any
) -> AsyncIterator[HubServer]:
    async with serve(
        redis_url, db_url, key_prefix, GIFTING_CATALOG=str(catalog), GIFTING_RATE_PER_S=1000,
        GIFTING_RATE_BURST=2000, **kw,
    ) as h:  # fmt: skip
        yield h


async def collect(ws: Any, until: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Room events of KINDS until ``until(events)`` holds (or the timeout: then what came)."""
    seen: list[dict[str, Any]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while not until(seen):
                msg = decode(await ws.recv())
                batch = msg["events"] if msg["op"] == "batch" else [msg]
                seen += [e for e in batch if e.get("kind") in KINDS]
    return seen


async def test_racing_gifters_announce_each_level_once_and_the_hub_ends_it(
    redis_url: str, database_url: str, key_prefix: str, hype_catalog: Path
) -> None:
    async with hyped_hub(redis_url, database_url, key_prefix, hype_catalog) as h:
        stream, key = await h.stream("carol")
        for user in ("ann", "bob"):
            await h.fund(user, "coins_1400")
        async with h.overlay(stream, key) as ov:
            assert (await recv(ov))["op"] == "snapshot"
            async with h.viewer(stream, "ann") as ann, h.viewer(stream, "bob") as bob:

                async def burst(ws: Any, tag: str) -> None:
                    for i in range(6):  # 6 x 30 coins each: 360 in all
                        await ws.send(encode({"op": "gift", "id": f"{tag}{i}", "gift": "doughnut",
                                              "count": 1}))  # fmt: skip
                    acks = 0
                    while acks < 6:
                        msg = decode(await ws.recv())
                        assert msg["op"] != "error", msg
                        acks += msg["op"] == "ack"

                await asyncio.gather(burst(ann, "a"), burst(bob, "b"))
            events = await collect(ov, lambda es: any(e["kind"] == "hype_ended" for e in es))
            # And nothing after it.
            events += await collect(ov, lambda es: False, timeout=1.5)
    hype = [e for e in events if e["kind"] == "hype"]
    # 360 coins: level 1 from 2 gifters' first 100+ (then 100 more: level 2, 200: level 3).
    assert [e["level"] for e in hype] == [1, 2, 3], hype
    assert len({e["event"] for e in hype}) == 3
    ended = [e for e in events if e["kind"] == "hype_ended"]
    assert len(ended) == 1 and ended[0]["level"] == 3
    assert ended[0]["event"] == hype[0]["event"].rsplit(".", 1)[0] + ".end"
    assert ended[0]["ts"] >= hype[-1]["expires_at"]


async def test_a_hype_a_dead_hub_started_is_ended_once_by_the_persister(
    redis_url: str, db_url: str, key_prefix: str, hype_catalog: Path
) -> None:
    """The debits alone, as in a hub that died before emitting: the persister's repair
    emits them (starting the hype), schedules its end, and its runner ends it."""
    async with hyped_hub(
        redis_url, db_url, key_prefix, hype_catalog, with_persister=True,
        GIFTING_PERSISTER_IN_PROCESS=True, GIFTING_PERSISTER_CLAIM_IDLE_MS=200,
    ) as h:  # fmt: skip
        stream, key = await h.stream("carol")
        async with h.overlay(stream, key) as ov:
            assert (await recv(ov))["op"] == "snapshot"
            results = []
            for user in ("sam", "tia"):
                await h.fund(user, "coins_1400")
                priced = price_gift(h.state.catalog, "doughnut", 2)
                order = SpendOrder(user, user.title(), "lost-1", priced, stream, "carol")
                results.append(await h.state.ledger.spend(order, live=True))
            events = await collect(ov, lambda es: any(e["kind"] == "hype_ended" for e in es))
            events += await collect(ov, lambda es: False, timeout=1.5)
    instance = hype_instance(results[1].event)
    assert [(e["kind"], e["event"]) for e in events] == [
        ("gift", results[0].event), ("gift", results[1].event),
        ("hype", f"{instance}.1"), ("hype", f"{instance}.2"), ("hype_ended", f"{instance}.end"),
    ]  # fmt: skip
