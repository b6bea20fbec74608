"""The contract between the storm and its generator processes.

The parent builds one :class:`WorkerPlan` per process (:func:`assign`): the
rooms, viewers and overlays it owns and what to send; the process answers
with a :class:`WorkerResult`. Both are plain picklable dataclasses.

Assignment: with at least as many rooms as processes, each room (its viewers
and overlays) belongs to one process, so every gift -> overlay latency is
measured in the process that sent the gift. With fewer rooms, a room's
viewers and overlays are spread over the processes; then each overlay times
the gifts of its own process's viewers (an unbiased sample) while the
exactly-once checks still cover every gift.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from loadtest.config import Mix

__all__ = [
    "OverlayReport",
    "RoomInfo",
    "Shot",
    "ViewerSpec",
    "WalletReport",
    "WorkerPlan",
    "WorkerResult",
    "assign_worker",
    "event_hash",
]


def event_hash(event: str) -> int:
    """A signed 64-bit hash of an event id: the first 8 bytes of its MD5.

    PostgreSQL computes the same with
    ``('x' || substr(md5(event_id), 1, 16))::bit(64)::bigint``, so sums of
    these compare sets of event ids across processes and the database.
    """
    return int.from_bytes(hashlib.md5(event.encode()).digest()[:8], "big", signed=True)


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """A room of the run: its symbolic name and the real stream behind it."""

    index: int
    name: str
    stream: str
    overlay_key: str
    creator: str


@dataclass(frozen=True, slots=True)
class ViewerSpec:
    """A viewer: a real user in one room, with its symbolic trace name."""

    user: str
    symbol: str
    room: int
    broke: bool = False
    #: Coins to fund it with (None: what its planned gifts cost).
    coins: int | None = None


@dataclass(frozen=True, slots=True)
class Shot:
    """A timed send: at ``t_ms``, viewer ``viewer`` (local index) sends a gift or a bad frame."""

    t_ms: float
    viewer: int
    gift: str = ""
    count: int = 1
    #: The client id (None: a fresh one).
    id: str | None = None
    #: The name of a bad frame (config.BAD_FRAMES) instead of a gift.
    bad: str = ""


@dataclass
class WorkerPlan:
    """Everything one generator process needs."""

    index: int
    run_id: str
    base_url: str
    ws_url: str
    rooms: list[RoomInfo]
    viewers: list[ViewerSpec]
    #: (room index, overlay number) of each overlay this process keeps.
    overlays: list[tuple[int, int]]
    mode: Literal["timed", "window"]
    #: timed: the sends, in time order; window + trace: each viewer's gifts in order.
    shots: list[Shot]
    #: storm (timed, no shots given): generate the pattern's sends in the process.
    pattern: str | None
    rate_share: float
    rate: float | None
    burst_factor: float
    duration_s: float
    window: int
    mix: Mix
    seed: int
    prices: dict[str, int]
    packages: list[tuple[str, int, int, str]]
    jwt_secret: str
    webhook_secret: str
    redis_url: str
    key_prefix: str
    setup: Literal["api", "store"]
    coins_per_viewer: int
    bucket_s: float
    drain_timeout_s: float
    record: bool = False


@dataclass
class OverlayReport:
    """What one overlay saw."""

    room: int
    number: int
    events: int = 0
    gifts: int = 0
    gift_hash_sum: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    gaps: int = 0
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)
    connected: bool = True


@dataclass
class WalletReport:
    """A viewer's money as the model sees it."""

    user: str
    room: int
    funded: int
    balance: int
    debited: int
    acked: int


@dataclass
class WorkerResult:
    """What a generator process reports at the end."""

    index: int
    pid: int
    viewers: int
    overlays: list[OverlayReport]
    wallets: list[WalletReport]
    #: room index -> [(event id, coins)] of every first ack of this process.
    acked: dict[int, list[tuple[str, int]]]
    frames_sent: int = 0
    gifts_sent: int = 0
    retries_sent: int = 0
    bad_sent: int = 0
    new_acks: int = 0
    replays: int = 0
    refused_funds: int = 0
    refused_bad: int = 0
    retryable: int = 0
    mismatches: int = 0
    mismatch_examples: list[str] = field(default_factory=list)
    unanswered: int = 0
    errors_by_code: dict[str, int] = field(default_factory=dict)
    viewer_reconnects: int = 0
    closes_by_code: dict[int, int] = field(default_factory=dict)
    histograms: dict[str, bytes | list[bytes]] = field(default_factory=dict)
    series: dict[str, list[int]] = field(default_factory=dict)
    #: The furthest behind schedule a timed send went (ms): > a few ms means
    #: this process could not keep up with its share of the rate.
    schedule_lag_ms_max: float = 0.0
    setup_s: float = 0.0
    send_s: float = 0.0
    last_ack_s: float = 0.0
    cpu_s: float = 0.0
    trace: list[tuple[float, str, str, str, int, str]] | None = None


def assign_worker(rooms: int, processes: int, room: int, member: int) -> int:
    """The process that owns member ``member`` (viewer or overlay number) of ``room``."""
    if rooms >= processes:
        return room % processes
    return (room + member) % processes
