"""The goals of issue 18, each a ratio to a figure measured in the same bench run.

Pure: :func:`evaluate` reads a bench run's figures (the dict ``bench.json``
holds under ``figures``) and returns one :class:`Goal` per goal, with the
ratio, its bound and a verdict (``None`` when a figure is missing). The bench
stores them in its JSON and renders them first in docs/benchmarks.md.

1. CPU per settled gift, summed over every process of the system (hubs,
   Redis, persisters, PostgreSQL; the load generators apart) <= 8x the echo
   server's CPU per message; on the single-Redis storm and on the cluster storm.
2. settled gifts/s >= 1.0x the PostgreSQL row-locking debit, and gift->overlay
   p99 at 50% of peak <= 5x the echo's p99 round trip.
3. overlay deliveries/s >= 2x Node socket.io (with its Redis adapter).
4. persister events/s >= 0.6x a bare batched COPY of the same rows.
5. <= 20 KiB per idle connection through the full hub, 10,000 held.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Goal", "as_json", "cpu_per_gift", "echo_cpu_us", "evaluate", "render"]

#: Roles of a storm's CPU table that are not the system under test.
_NOT_SYSTEM: Final = ("load generator",)


@dataclass(frozen=True, slots=True)
class Goal:
    """One goal: what was compared, the ratio, the bound, the verdict."""

    number: int
    name: str
    measured: str
    ratio: float | None
    bound: str
    met: bool | None

    def verdict(self) -> str:
        """ "met", "**not met**" or "n/a"."""
        return "n/a" if self.met is None else ("met" if self.met else "**not met**")


def _get(d: dict[str, Any], *path: str) -> float | None:
    cur: Any = d
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return float(cur) if isinstance(cur, int | float) and not isinstance(cur, bool) else None


def echo_cpu_us(figures: dict[str, Any]) -> float | None:
    """The echo server's CPU per message, in µs (its CPU over its measured window)."""
    echo = figures.get("echo_ceiling") or {}
    cpu, messages = _get(echo, "server_cpu_s"), _get(echo, "messages")
    return cpu * 1e6 / messages if cpu and messages else None


def cpu_per_gift(storm: dict[str, Any]) -> dict[str, float] | None:
    """µs of CPU per settled gift by process of the system (and ``"all"``), from a storm."""
    settled = _get(storm, "settled_gifts_per_s")
    cores = storm.get("server_cpu")
    if not settled or not isinstance(cores, dict) or not cores:
        return None
    out = {
        role: c * 1e6 / settled
        for role, c in cores.items()
        if role not in _NOT_SYSTEM and isinstance(c, int | float)
    }
    out["all"] = sum(out.values())
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _le(r: float | None, k: float) -> bool | None:
    return None if r is None else r <= k


def _ge(r: float | None, k: float) -> bool | None:
    return None if r is None else r >= k


def _n(x: float | None, unit: str = "") -> str:
    return "n/a" if x is None else f"{x:,.0f}{unit}"


def _x(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.2f}x"


def evaluate(figures: dict[str, Any]) -> list[Goal]:
    """Goals 1-5 of issue 18 from one run's figures (see the module's docstring)."""
    echo_us = echo_cpu_us(figures)
    goals: list[Goal] = []
    for key, label in (("storm_peak", "one Redis"), ("storm_cluster_peak", "3-master cluster")):
        per = cpu_per_gift(figures.get(key) or {})
        total = per["all"] if per else None
        r = _ratio(total, echo_us)
        parts = ", ".join(f"{k} {v:,.0f}" for k, v in per.items() if k != "all") if per else ""
        goals.append(
            Goal(
                1,
                f"CPU per settled gift <= 8x the echo server's CPU per message ({label})",
                f"{_n(total, ' µs')} ({parts}) vs echo {echo_us or 0:,.1f} µs/msg",
                r,
                "<= 8x",
                _le(r, 8.0),
            )
        )
    settled = _get(figures, "storm_peak", "settled_gifts_per_s")
    debit = _get(figures, "pg_debit", "spends_per_s")
    r = _ratio(settled, debit)
    goals.append(
        Goal(
            2,
            "settled gifts/s >= 1.0x the PostgreSQL row-locking debit",
            f"{_n(settled)} vs {_n(debit)} debits/s",
            r,
            ">= 1.0x",
            _ge(r, 1.0),
        )
    )
    p_half = _get(figures, "storm_50", "overlay", "p99_ms")
    echo_p99 = _get(figures, "echo_ceiling", "latency", "p99_ms")
    r = _ratio(p_half, echo_p99)
    goals.append(
        Goal(
            2,
            "gift->overlay p99 at 50% of peak <= 5x the echo's p99 round trip",
            f"{_n(p_half, ' ms')} vs echo p99 {echo_p99 or 0:.2f} ms",
            r,
            "<= 5x",
            _le(r, 5.0),
        )
    )
    overlays = _get(figures, "gifting_overlays", "deliveries_per_s")
    node = _get(figures, "socketio_node", "deliveries_per_s")
    r = _ratio(overlays, node)
    goals.append(
        Goal(
            3,
            "overlay deliveries/s >= 2x Node socket.io (Redis adapter)",
            f"{_n(overlays)} vs {_n(node)}",
            r,
            ">= 2x",
            _ge(r, 2.0),
        )
    )
    pers = figures.get("persister") or {}
    seconds, events = _get(pers, "seconds"), _get(pers, "events_persisted")
    rate = events / seconds if events is not None and seconds else None
    copy = _get(figures, "pg_insert_ceiling", "events_per_s")
    lag = _get(figures, "storm_peak", "persister", "lag_max_ms")
    r = _ratio(rate, copy)
    bounded = None if lag is None else lag <= 5000
    met = _ge(r, 0.6)
    goals.append(
        Goal(
            4,
            "persister events/s >= 0.6x a bare batched COPY, lag bounded at peak",
            f"{_n(rate)} vs COPY {_n(copy)} events/s; max lag at peak {_n(lag, ' ms')}",
            r,
            ">= 0.6x",
            None if met is None else met and bounded is not False,
        )
    )
    idle = figures.get("idle_connections") or {}
    conns = _get(idle, "connections")
    before, after = _get(idle, "rss_before_mib"), _get(idle, "rss_after_mib")
    kib = (after - before) * 1024 / conns if conns and before is not None and after else None
    held = bool(idle.get("held")) and (conns or 0) >= 10_000
    goals.append(
        Goal(
            5,
            "<= 20 KiB per idle connection through the full hub, 10,000 held",
            f"{'n/a' if kib is None else f'{kib:.1f} KiB'} ({_n(conns)} connections"
            f"{'' if held else ', not 10,000 held'})",
            kib,
            "<= 20 KiB",
            None if kib is None else kib <= 20 and held,
        )
    )
    return goals


def as_json(goals: list[Goal]) -> list[dict[str, Any]]:
    """The goals as plain dicts (for bench.json)."""
    return [
        {
            "goal": g.number,
            "name": g.name,
            "measured": g.measured,
            "ratio": None if g.ratio is None else round(g.ratio, 3),
            "bound": g.bound,
            "met": g.met,
        }
        for g in goals
    ]


def render(goals: list[Goal]) -> list[str]:
    """The goals table (markdown lines)."""
    lines = ["| # | goal | measured | ratio | verdict |", "| --- | --- | --- | --- | --- |"]
    for g in goals:
        ratio = _x(g.ratio) if g.number != 5 else ("n/a" if g.ratio is None else f"{g.ratio:.1f}")
        lines.append(f"| {g.number} | {g.name} | {g.measured} | {ratio} | {g.verdict()} |")
    return lines
