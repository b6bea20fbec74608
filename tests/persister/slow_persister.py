"""A deliberately slow persister process, for the kill -9 test (run as a script).

Configured from the environment like ``gifting persist``; every spend hook
sleeps a little and every XACK waits, so that a SIGKILL lands mid-batch:
during the creator-credit repairs, inside the PostgreSQL transaction, or
between the commit and the XACK.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

from gifting.config import Settings
from gifting.core.entries import SpendEntry
from gifting.persister.consumer import OutboxConsumer, OutboxEntry
from gifting.persister.service import run_persister

HOOK_S = float(os.environ.get("SLOW_HOOK_S", "0.002"))
ACK_S = float(os.environ.get("SLOW_ACK_S", "0.03"))


async def slow_hook(entries: list[SpendEntry], not_after: int) -> None:
    await asyncio.sleep(HOOK_S)


_ack = OutboxConsumer._ack


async def slow_ack(self: OutboxConsumer, entries: Sequence[OutboxEntry]) -> None:
    await asyncio.sleep(ACK_S)  # committed, not yet acknowledged: the window that matters
    await _ack(self, entries)


OutboxConsumer._ack = slow_ack  # type: ignore[method-assign]


if __name__ == "__main__":
    sys.stdout.write(f"started {os.getpid()}\n")
    sys.stdout.flush()
    asyncio.run(run_persister(Settings(), on_spends=slow_hook))
