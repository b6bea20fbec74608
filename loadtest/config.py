"""What a storm is made of: its parameters, its rate patterns and its gift mix.

Pure values and functions, no I/O: :class:`StormConfig` says how many rooms,
viewers and overlays, how fast and in which shape gifts are sent, and where
the server is; :func:`rate_at` and :func:`shot_times` turn a pattern into the
times of the sends; :data:`GIFT_MIX` is the share of each gift in a storm.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

__all__ = [
    "BAD_FRAMES",
    "BROKE_COINS",
    "GIFT_MIX",
    "Mix",
    "Pattern",
    "ServerOptions",
    "StormConfig",
    "pick_gift",
    "rate_at",
    "shot_times",
]

Pattern = Literal["steady", "ramp", "burst"]
PATTERNS: Final[tuple[Pattern, ...]] = ("steady", "ramp", "burst")

#: Coins a "broke" viewer gets (the smallest package): their gifts soon fail.
BROKE_COINS: Final = 70

#: (gift id, weight, counts to choose from): a storm is mostly cheap streakable
#: gifts sent in combos, with a few big ones (shares as seen on TikTok LIVE).
GIFT_MIX: Final[tuple[tuple[str, float, tuple[int, ...]], ...]] = (
    ("rose", 55.0, (1, 1, 1, 1, 1, 1, 5, 10)),
    ("tiktok", 6.0, (1,)),
    ("gg", 5.0, (1,)),
    ("ice_cream_cone", 5.0, (1, 1, 5)),
    ("finger_heart", 10.0, (1, 1, 1, 5)),
    ("rosa", 5.0, (1,)),
    ("perfume", 3.0, (1,)),
    ("doughnut", 3.0, (1,)),
    ("cap", 2.0, (1,)),
    ("hand_hearts", 2.0, (1,)),
    ("sunglasses", 1.0, (1,)),
    ("corgi", 0.8, (1,)),
    ("money_gun", 0.8, (1,)),
    ("swan", 0.5, (1,)),
    ("galaxy", 0.4, (1,)),
    ("whale_diving", 0.2, (1,)),
    ("sports_car", 0.1, (1,)),
    ("lion", 0.03, (1,)),
    ("universe", 0.02, (1,)),
)
_MIX_IDS: Final = [g for g, _, _ in GIFT_MIX]
_MIX_CUM: Final = list(itertools.accumulate(w for _, w, _ in GIFT_MIX))
_MIX_COUNTS: Final = {g: c for g, _, c in GIFT_MIX}

#: Frames that must each get an ``error`` (and change nothing): (name, frame).
#: ``{id}`` is replaced by a fresh client id. None of them closes the connection.
BAD_FRAMES: Final[tuple[tuple[str, str], ...]] = (
    ("not_json", "{not json"),
    ("unknown_gift", '{"op":"gift","id":"{id}","gift":"no_such_gift","count":1}'),
    ("zero_count", '{"op":"gift","id":"{id}","gift":"rose","count":0}'),
    ("negative_count", '{"op":"gift","id":"{id}","gift":"rose","count":-1}'),
    ("huge_count", '{"op":"gift","id":"{id}","gift":"rose","count":9007199254740993}'),
    ("string_count", '{"op":"gift","id":"{id}","gift":"rose","count":"1"}'),
    ("unknown_field", '{"op":"gift","id":"{id}","gift":"rose","count":1,"coins":0}'),
    ("missing_id", '{"op":"gift","gift":"rose","count":1}'),
    ("unknown_op", '{"op":"steal","id":"{id}"}'),
    ("array", "[1,2,3]"),
)
#: The error codes a bad frame may get.
BAD_FRAME_CODES: Final = frozenset({"bad_request", "unknown_item"})


def pick_gift(rng: random.Random) -> tuple[str, int]:
    """A (gift id, count) drawn from :data:`GIFT_MIX`."""
    gift = rng.choices(_MIX_IDS, cum_weights=_MIX_CUM)[0]
    return gift, rng.choice(_MIX_COUNTS[gift])


@dataclass(frozen=True)
class Mix:
    """The shares of the unusual traffic in a storm.

    ``retry_share``: share of acked gifts re-sent with the same id right after
    their ack (must get the same ack, debit nothing). ``broke_share``: share of
    viewers funded with only :data:`BROKE_COINS` (their later gifts get
    ``insufficient_funds``). ``bad_share``: share of frames that are bad (must
    get an error and change nothing). ``engagement``: run the engagement mix
    (guests, videos, goals, treasure boxes: :mod:`loadtest.engagement`) in the
    first rooms beside the storm; its boxes make the run last at least 45 s.
    """

    retry_share: float = 0.05
    broke_share: float = 0.1
    bad_share: float = 0.01
    engagement: bool = False

    def __post_init__(self) -> None:
        for name in ("retry_share", "broke_share", "bad_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], not {value}")


@dataclass(frozen=True)
class ServerOptions:
    """Where the server is, or how to start one.

    * default: private Redis + PostgreSQL (:mod:`gifting.embedded`) in a temp
      folder and ``gifting serve`` as a subprocess;
    * ``redis_url`` and ``database_url``: ``gifting serve`` against those
      (keys under ``key_prefix``; the database should be the storm's own, the
      audit reads all of it);
    * ``url``: a running server; ``redis_url`` / ``database_url`` and both
      secrets are still needed to set up and check the run;
    * ``cluster``: a private 3-master Redis Cluster instead of the single
      Redis (a ``redis+cluster://`` ``redis_url`` is one you run);
      ``hubs`` > 1 starts that many ``gifting serve``, ``persisters`` that
      many ``gifting persist`` (they share the outbox shards).
    """

    url: str | None = None
    redis_url: str | None = None
    database_url: str | None = None
    workers: int = 1
    persister: Literal["in-process", "separate"] = "in-process"
    #: ``gifting serve`` processes (each on its own port; the generators split between them).
    hubs: int = 1
    #: ``gifting persist`` processes (with ``persister="separate"``).
    persisters: int = 1
    #: Start a private Redis Cluster (3 masters) instead of a single Redis.
    cluster: bool = False
    appendfsync: Literal["always", "everysec"] = "always"
    key_prefix: str = "g"
    jwt_secret: str | None = None
    webhook_secret: str | None = None
    #: Extra environment for ``gifting serve`` (e.g. send-queue size).
    env: dict[str, str] = field(default_factory=dict)
    #: Pids of a running server (``url`` mode) to report its CPU.
    server_pids: tuple[int, ...] = ()
    #: Keep the temp folder (server logs, data) after the run.
    keep_dir: bool = False
    #: Record a py-spy flame graph of each server worker into the report dir.
    profile: bool = False

    @property
    def external(self) -> bool:
        """Whether the server is already running (``url`` mode)."""
        return self.url is not None


@dataclass(frozen=True)
class StormConfig:
    """One storm (or replay): its shape, its server and its outputs.

    ``rate`` is the target of settled gifts per second over all rooms (the
    peak of the pattern); ``rate=None`` sends as fast as possible: every viewer
    keeps ``window`` gifts in flight (closed loop), which finds the peak.
    With ``trace`` set, rooms, viewers and send times come from the trace
    (``speed`` scales its clock; ``rate=None`` replays as fast as possible).
    """

    rooms: int = 4
    viewers: int = 25
    overlays: int = 2
    duration_s: float = 20.0
    rate: float | None = 1000.0
    pattern: Pattern = "steady"
    #: burst: the spike is ``burst_factor`` x the baseline (the peak is ``rate``).
    burst_factor: float = 5.0
    window: int = 1
    processes: int = 2
    mix: Mix = field(default_factory=Mix)
    seed: int = 1
    server: ServerOptions = field(default_factory=ServerOptions)
    #: "api": streams via POST /v1/streams, coins via the signed purchase
    #: webhook; "store": directly through Streams.create / Ledger.purchase.
    setup: Literal["api", "store"] = "api"
    #: Coins for each funded viewer when sending as fast as possible.
    coins_per_viewer: int = 35_000
    trace: Path | None = None
    speed: float = 1.0
    record: Path | None = None
    report_dir: Path | None = None
    #: Time-series resolution.
    bucket_s: float = 0.5
    #: How long to wait for the last acks, overlay events and the persister.
    drain_timeout_s: float = 30.0
    #: A name for the run, shown in reports.
    label: str = ""

    def __post_init__(self) -> None:
        if self.trace is None:
            if self.rooms < 1 or self.viewers < 1 or self.overlays < 0:
                raise ValueError("need at least one room and one viewer per room")
            if self.pattern not in PATTERNS:
                raise ValueError(f"pattern must be one of {PATTERNS}")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive (or None: as fast as possible)")
        if self.duration_s <= 0 or self.processes < 1 or self.window < 1:
            raise ValueError("duration, processes and window must be positive")
        if self.speed <= 0:
            raise ValueError("speed must be positive")

    @property
    def as_fast_as_possible(self) -> bool:
        """Whether gifts are sent closed-loop as fast as the server acks them."""
        return self.rate is None


def rate_at(pattern: Pattern, t: float, duration: float, peak: float, burst_factor: float) -> float:
    """The target rate (gifts/s) at ``t`` seconds into a run of ``duration``.

    * ``steady``: ``peak`` all along;
    * ``ramp``: from ``peak / 10`` up to ``peak``, linearly;
    * ``burst``: the minute a creator asks for gifts: a baseline of
      ``peak / burst_factor``, the spike at ``peak`` from 30% to 60% of the
      run, then the baseline again.
    """
    if pattern == "steady":
        return peak
    if pattern == "ramp":
        return peak * (0.1 + 0.9 * min(1.0, t / duration))
    base = peak / burst_factor
    return peak if 0.3 * duration <= t < 0.6 * duration else base


def shot_times(
    pattern: Pattern, duration: float, peak: float, burst_factor: float, share: float = 1.0
) -> Iterator[float]:
    """The send times (seconds) of a pattern, evenly paced: the k-th send
    happens when the integral of the rate reaches k (times ``share``, the part
    of the traffic one generator process sends)."""
    step = 0.001
    t = 0.0
    owed = 0.0
    while t < duration:
        owed += rate_at(pattern, t, duration, peak, burst_factor) * share * step
        if owed >= 1.0:
            n = math.floor(owed)
            for i in range(n):
                yield t + step * (i / n)
            owed -= n
        t += step
