"""A fresh overlay's snapshot and the events after it are the whole room (contract §3.4).

The snapshot's totals, top gifters and seq are read together, and the events
that follow start exactly after that seq: a gift emitted while an overlay
connects is in its snapshot or among its events, never in neither, never in both.
"""

from __future__ import annotations

import asyncio

from tests.hub.conftest import HubServer, decode, recv

SENDERS = ("ann", "bob", "cyd")


async def test_a_gift_during_the_snapshot_is_in_it_or_after_it_never_lost(
    hub: HubServer,
) -> None:
    stream, key = await hub.stream()
    roomlog = hub.state.roomlog
    assert roomlog is not None
    stop = asyncio.Event()

    async def storm() -> None:
        i = 0
        while not stop.is_set():
            sender = SENDERS[i % 3]
            body = {"kind": "gift", "stream": stream, "event": f"g{i}", "ts": 0, "coins": 1}
            await roomlog.emit(
                stream, body, sender=sender, sender_name=sender.title(), coins=1, gifts=1,
                item_field="gift:rose",
            )  # fmt: skip
            i += 1

    # Every event is a one-coin gift, so the room's coins equal its seq at every point.
    storms = [asyncio.get_running_loop().create_task(storm()) for _ in range(2)]
    try:
        for _ in range(20):
            async with hub.overlay(stream, key) as ov:
                snap = await recv(ov)
                assert snap["op"] == "snapshot"
                async with asyncio.timeout(10):
                    while True:
                        msg = decode(await ov.recv())
                        if msg["op"] == "event":
                            break
                coins = snap["totals"]["coins"]
                assert coins == snap["totals"]["gifts"] == snap["seq"], snap
                assert sum(t["coins"] for t in snap["top"]) == coins, snap
                assert snap["cursor"] is None or snap["cursor"].endswith(f"_{snap['seq']}")
                assert msg["seq"] == snap["seq"] + 1, (snap["seq"], msg["seq"])
    finally:
        stop.set()
        await asyncio.gather(*storms)
