"""The goals of issue 18 as the bench computes them: ratios to figures of the same run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadtest.goals import cpu_per_gift, echo_cpu_us, evaluate, render


def _figures(**over: Any) -> dict[str, Any]:
    storm = {
        "settled_gifts_per_s": 2000.0,
        "server_cpu": {"server": 0.4, "persister": 0.2, "redis": 0.2, "postgres": 0.1},
        "overlay": {"p99_ms": 20.0},
        "persister": {"lag_max_ms": 120.0},
    }
    figures: dict[str, Any] = {
        "echo_ceiling": {"server_cpu_s": 10.0, "messages": 500_000, "latency": {"p99_ms": 5.0}},
        "storm_peak": storm,
        "storm_cluster_peak": {**storm, "settled_gifts_per_s": 1000.0},
        "storm_50": {"overlay": {"p99_ms": 20.0}},
        "pg_debit": {"spends_per_s": 4000.0},
        "socketio_node": {"deliveries_per_s": 100_000.0},
        "gifting_overlays": {"deliveries_per_s": 250_000.0},
        "pg_insert_ceiling": {"events_per_s": 50_000.0},
        "persister": {"events_persisted": 120_000, "seconds": 4.0},
        "idle_connections": {
            "connections": 10_000, "held": True, "rss_before_mib": 100.0, "rss_after_mib": 290.0,
        },
    }  # fmt: skip
    figures.update(over)
    return figures


def test_cpu_per_gift_sums_the_systems_processes_per_settled_gift() -> None:
    per = cpu_per_gift(_figures()["storm_peak"])
    assert per == {"server": 200.0, "persister": 100.0, "redis": 100.0, "postgres": 50.0,
                   "all": 450.0}  # fmt: skip
    assert echo_cpu_us(_figures()) == 20.0


def test_each_goal_is_a_ratio_with_its_verdict() -> None:
    goals = evaluate(_figures())
    got = [(g.number, None if g.ratio is None else round(g.ratio, 2), g.met) for g in goals]
    assert got == [
        (1, 22.5, False),  # 450 µs per gift vs 20 µs per echo message
        (1, 45.0, False),  # the cluster storm: half the gifts for the same cores
        (2, 0.5, False),  # 2,000 gifts/s vs 4,000 debits/s
        (2, 4.0, True),  # p99 20 ms vs echo 5 ms
        (3, 2.5, True),
        (4, 0.6, True),
        (5, 19.46, True),  # 190 MiB over 10,000 connections
    ]
    assert all("|" in line for line in render(goals))


def test_a_missing_figure_gives_no_verdict_and_a_lagging_persister_fails_goal_4() -> None:
    figures = _figures(storm_cluster_peak={}, idle_connections={})
    goals = evaluate(figures)
    assert goals[1].met is None and goals[1].verdict() == "n/a"
    assert goals[-1].met is None
    lagging = _figures()
    lagging["storm_peak"] = {**lagging["storm_peak"], "persister": {"lag_max_ms": 60_000.0}}
    assert evaluate(lagging)[5].met is False


def test_the_bench_keeps_the_hand_written_analysis_when_it_rewrites_the_doc(
    tmp_path: Path,
) -> None:
    from loadtest.bench import ANALYSIS_MARKER, kept_analysis

    doc = tmp_path / "benchmarks.md"
    assert kept_analysis(doc) == ""
    doc.write_text(f"# old figures\n\n{ANALYSIS_MARKER}\n\n## Why\n\nbecause\n")
    assert kept_analysis(doc) == f"\n{ANALYSIS_MARKER}\n\n## Why\n\nbecause\n"
    doc.write_text("# figures only\n")
    assert kept_analysis(doc) == ""
