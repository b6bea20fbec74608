"""The presence beat: this hub reports its viewers per stream to Redis.

Every ``GIFTING_PRESENCE_MS`` the hub writes, for each room with viewers,
how many viewer connections it holds (overlays do not count), fresh for
:data:`BEATS_FRESH` beats; a room whose viewers all left since the last beat
has its field deleted. A hub that dies (or whose beat stops) stops counting
once its last reports expire: within ``BEATS_FRESH`` beats. A clean stop
deletes its fields at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Callable
from typing import Final

from gifting.clock import now_ms
from gifting.hub import metrics
from gifting.store.presence import Presence

log = logging.getLogger(__name__)

#: How many beats a report stays fresh: the bound, in beats, on counting a dead hub.
BEATS_FRESH: Final = 3


class PresenceBeat:
    """Reports ``counts()`` (stream → viewers on this hub) every ``interval_s``."""

    def __init__(
        self, presence: Presence, counts: Callable[[], dict[str, int]], interval_s: float
    ) -> None:
        self.presence = presence
        self.counts = counts
        self.interval_s = interval_s
        #: This process's id in the reports: new at each start, so a restarted hub
        #: never revives the reports of the one it replaces.
        self.hub_id = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._reported: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start beating (the first report at once)."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, clear: bool = True) -> None:
        """Stop beating; with ``clear``, delete this hub's reports (a clean shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if clear and self._reported:
            with contextlib.suppress(Exception):
                await self.presence.report(self.hub_id, {}, self._reported, 0, 0)
            self._reported = set()
        metrics.PRESENCE_VIEWERS.set(0)

    async def beat(self) -> None:
        """Report once: the current counts, and the streams whose viewers all left."""
        counts = {s: n for s, n in self.counts().items() if n > 0}
        gone = self._reported - counts.keys()
        fresh_ms = int(self.interval_s * 1000 * BEATS_FRESH)
        await self.presence.report(self.hub_id, counts, gone, now_ms() + fresh_ms, fresh_ms)
        self._reported = set(counts)
        metrics.PRESENCE_VIEWERS.set(sum(counts.values()))

    async def _run(self) -> None:
        while True:
            try:
                await self.beat()
            except Exception as exc:  # Redis away: the next beat tries again
                metrics.PRESENCE_FAILURES.inc()
                log.warning("presence beat failed: %r", exc)
            await asyncio.sleep(self.interval_s)
