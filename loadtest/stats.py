"""Figures of a run: latency histograms, time series and CPU of process groups.

* :class:`Recorder` — what a generator process counts while it runs: cheap
  appends to arrays during the run, HdrHistograms built once at the end
  (overall and per time bucket), encoded so the parent merges them
  (:func:`merge`);
* :class:`LatencySummary` — p50/p90/p99/p99.9/max of a histogram, in ms;
* :class:`CpuMeter` — CPU seconds of named groups of processes (psutil),
  sampled over time by the parent.
"""

from __future__ import annotations

import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

import psutil
from hdrh.histogram import HdrHistogram

__all__ = [
    "MACHINE",
    "OTHER",
    "SERIES",
    "CpuMeter",
    "LatencySummary",
    "Recorder",
    "hist_from",
    "merge",
    "new_hist",
    "percentile_curve",
]

#: Latencies are recorded in microseconds, from 1 µs to 2 minutes, 3 significant digits.
LOWEST_US: Final = 1
HIGHEST_US: Final = 120_000_000
SIGNIFICANT: Final = 3

#: Pseudo-groups of :meth:`CpuMeter.between`: the whole machine, and what no group used.
MACHINE: Final = "machine"
OTHER: Final = "other processes"

#: Counters kept per time bucket by every generator process.
SERIES: Final = (
    "sent",  # frames sent (gifts, retries, bad frames)
    "acked",  # first acks of gifts (settled gifts)
    "refused",  # expected errors (insufficient funds, bad frames)
    "overlay_events",  # room events received by overlays
    "overlay_gifts",  # gift events received by overlays
    "viewer_events",  # room events received by viewers (inside batch frames)
    "viewer_frames",  # batch frames received by viewers
)


def new_hist() -> HdrHistogram:
    """An empty latency histogram (µs)."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT)


def hist_from(values: Iterable[int]) -> HdrHistogram:
    """A histogram of ``values`` (µs), recorded once per distinct value."""
    h = new_hist()
    for value, n in Counter(values).items():
        h.record_value(min(max(value, LOWEST_US), HIGHEST_US), n)
    return h


def merge(encoded: Iterable[bytes]) -> HdrHistogram:
    """One histogram from several encoded ones (from several processes)."""
    h = new_hist()
    for blob in encoded:
        if blob:
            h.add(HdrHistogram.decode(blob))
    return h


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles of one latency, in milliseconds."""

    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def of(cls, h: HdrHistogram) -> LatencySummary:
        """The summary of histogram ``h`` (all zeros when it is empty)."""
        n = h.get_total_count()
        if not n:
            return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

        def ms(p: float) -> float:
            return round(float(h.get_value_at_percentile(p)) / 1000, 3)

        return cls(
            n, ms(50), ms(90), ms(99), ms(99.9),
            round(h.get_max_value() / 1000, 3), round(h.get_mean_value() / 1000, 3),
        )  # fmt: skip


def percentile_curve(h: HdrHistogram) -> list[tuple[float, float]]:
    """(percentile, ms) points of the distribution, dense towards the tail."""
    if not h.get_total_count():
        return []
    points: list[tuple[float, float]] = []
    p = 0.0
    while p < 99.999:
        points.append((p, float(h.get_value_at_percentile(p)) / 1000))
        # ten points per "nine": 0..90 in steps of 9, then 90..99 in steps of .9, ...
        p += (100.0 - p) / 10 if p >= 90 else 9.0
    points.append((100.0, float(h.get_max_value()) / 1000))
    return points


@dataclass
class Recorder:
    """Counts and latencies of one generator process, bucketed by time since ``t0``."""

    bucket_ns: int
    t0: int = 0
    series: dict[str, list[int]] = field(default_factory=lambda: {s: [] for s in SERIES})
    ack_us: array[int] = field(default_factory=lambda: array("q"))
    ack_bucket: array[int] = field(default_factory=lambda: array("i"))
    overlay_us: array[int] = field(default_factory=lambda: array("q"))
    overlay_bucket: array[int] = field(default_factory=lambda: array("i"))

    def bucket(self, now: int) -> int:
        """The time bucket of monotonic time ``now`` (ns)."""
        return max(0, (now - self.t0) // self.bucket_ns)

    def count(self, name: str, now: int, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` in the bucket of ``now``."""
        b = self.bucket(now)
        s = self.series[name]
        if b >= len(s):
            s.extend([0] * (b + 1 - len(s)))
        s[b] += n

    def ack(self, sent: int, now: int) -> None:
        """One gift -> ack latency."""
        self.ack_us.append((now - sent) // 1000)
        self.ack_bucket.append(self.bucket(now))

    def overlay(self, sent: int, now: int) -> None:
        """One gift -> overlay latency."""
        self.overlay_us.append((now - sent) // 1000)
        self.overlay_bucket.append(self.bucket(now))

    def histograms(self) -> dict[str, bytes | list[bytes]]:
        """Encoded histograms: ``ack``, ``overlay`` and per bucket ``ack_by_bucket`` ..."""
        out: dict[str, bytes | list[bytes]] = {}
        for name, values, buckets in (
            ("ack", self.ack_us, self.ack_bucket),
            ("overlay", self.overlay_us, self.overlay_bucket),
        ):
            out[name] = hist_from(values).encode()
            per: dict[int, list[int]] = {}
            for v, b in zip(values, buckets, strict=True):
                per.setdefault(b, []).append(v)
            n = max(per) + 1 if per else 0
            out[f"{name}_by_bucket"] = [
                hist_from(per[b]).encode() if b in per else b"" for b in range(n)
            ]
        return out


ProcessSource = Callable[[], list[psutil.Process]]


@dataclass
class CpuMeter:
    """CPU seconds (user + system) of named process groups, sampled over time.

    Each group is a function returning its live processes (a server's tree may
    change). Per process the last reading is kept, so a process that exits
    keeps the CPU it had used when last sampled.
    """

    groups: dict[str, ProcessSource]
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    _last: dict[tuple[str, int], float] = field(default_factory=dict)

    def read(self) -> dict[str, float]:
        """Sample now: cumulative CPU seconds per group."""
        for name, source in self.groups.items():
            try:
                procs = source()
            except psutil.Error:
                procs = []
            for p in procs:
                try:
                    t = p.cpu_times()
                    self._last[(name, p.pid)] = t.user + t.system
                except psutil.Error:
                    continue
        totals = dict.fromkeys(self.groups, 0.0)
        for (name, _), seconds in self._last.items():
            totals[name] += seconds
        m = psutil.cpu_times()
        totals[MACHINE] = sum(m) - m.idle - getattr(m, "iowait", 0.0) - getattr(m, "steal", 0.0)
        self.samples.append((time.monotonic(), totals))
        return totals

    def between(self, start: float, end: float) -> dict[str, float]:
        """Average cores used per group between monotonic times ``start`` and ``end``;
        also the whole machine's (``MACHINE``) and what no group used (``OTHER``):
        on a shared machine, the load that was not this run."""
        if len(self.samples) < 2:
            return {}
        first = min(self.samples, key=lambda s: abs(s[0] - start))
        last = min(self.samples, key=lambda s: abs(s[0] - end))
        span = last[0] - first[0]
        if span <= 0:
            return {}
        out = {k: round((last[1][k] - first[1][k]) / span, 3) for k in [*self.groups, MACHINE]}
        out[OTHER] = round(max(0.0, out[MACHINE] - sum(out[k] for k in self.groups)), 3)
        return out

    def series(self, t0: float) -> dict[str, list[tuple[float, float]]]:
        """Per group (and ``OTHER``): (seconds since ``t0``, cores used since the last sample)."""
        out: dict[str, list[tuple[float, float]]] = {k: [] for k in [*self.groups, OTHER]}
        spans = [tb - ta for (ta, _), (tb, _) in zip(self.samples, self.samples[1:], strict=False)]
        usual = sorted(spans)[len(spans) // 2] if spans else 0.0
        for (ta, a), (tb, b) in zip(self.samples, self.samples[1:], strict=False):
            if tb - ta < usual / 2:  # a short interval (the last read) says nothing but noise
                continue
            x = round(tb - t0, 3)
            used = 0.0
            for k in self.groups:
                cores = (b[k] - a[k]) / (tb - ta)
                used += cores
                out[k].append((x, round(cores, 3)))
            other = (b[MACHINE] - a[MACHINE]) / (tb - ta) - used
            out[OTHER].append((x, round(max(0.0, other), 3)))
        return out


def tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (empty if it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
