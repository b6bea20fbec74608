"""Room internals that a socket test cannot show."""

from __future__ import annotations

import asyncio
import gc
import weakref

from gifting.hub.room import Room
from gifting.store.rooms import HistoryEntry


def entry(seq: int) -> HistoryEntry:
    return HistoryEntry(seq, f"1-{seq}_{seq}", b'{"kind":"test","event":"t%d"}' % seq)


async def test_the_gap_fill_task_is_kept_until_it_is_done() -> None:
    # The loop keeps only weak references to tasks: a task waiting on a future that
    # nothing else holds is garbage, unless its creator keeps it.
    called = asyncio.Event()
    tasks: list[weakref.ref[asyncio.Task[None]]] = []

    async def fetch_since(stream: str, cursor: str, limit: int) -> list[HistoryEntry]:
        task = asyncio.current_task()
        assert task is not None
        tasks.append(weakref.ref(task))  # type: ignore[arg-type]
        called.set()
        await asyncio.get_running_loop().create_future()  # a read that never answers
        return []

    room = Room("s1", fetch_since)
    room.receive(entry(1))
    room.receive(entry(5))  # a gap: the fill starts
    await called.wait()
    gc.collect()
    assert tasks[0]() is not None and not tasks[0]().done()  # type: ignore[union-attr]
    tasks[0]().cancel()  # type: ignore[union-attr]
