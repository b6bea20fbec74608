"""Reports of a run: ``result.json``, ``summary.md`` and PNG plots (matplotlib, Agg).

:func:`write_report` writes into a folder:

* ``result.json`` — every figure, the parameters, the checks and the machine;
* ``summary.md`` — the figures a reader wants first, with the generator's CPU
  beside them, the checks, and where the server's time went (when profiled);
* ``throughput.png`` — gifts sent and settled, overlay and viewer deliveries
  per second over time;
* ``latency.png`` — p50 and p99 of gift -> ack and gift -> overlay over time;
* ``latency_distribution.png`` — the percentile curves of both latencies;
* ``cpu.png`` — cores used over time by the generator, the server, Redis,
  PostgreSQL (and the persister when separate), with the persister's lag.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loadtest.storm import StormResult

__all__ = ["markdown", "plot", "write_report"]


def write_report(result: StormResult, folder: Path) -> None:
    """Write the JSON, the markdown summary and the plots into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    data = result.to_json()
    (folder / "result.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    (folder / "summary.md").write_text(markdown(data))
    plot(data, folder)


# --------------------------------------------------------------------------- markdown


def _ms(s: dict[str, Any]) -> str:
    if not s["count"]:
        return "-"
    return f"{s['p50_ms']:.1f} / {s['p90_ms']:.1f} / {s['p99_ms']:.1f} / {s['max_ms']:.1f}"


def markdown(d: dict[str, Any]) -> str:
    """The human summary of a result (as produced by ``StormResult.to_json``)."""
    cfg, c, gen = d["config"], d["counts"], d["generator_cpu"]
    rate = (
        f"{d['target_rate']:,.0f}/s {cfg['pattern']}" if d["target_rate"] else "as fast as possible"
    )
    if cfg.get("trace"):
        rate = f"replay of {cfg['trace']} " + (
            f"at speed {cfg['speed']}" if cfg["rate"] else "as fast as possible"
        )
    gen_cores = gen["total_cores"]
    per_proc = ", ".join(f"{v:.2f}" for v in gen["per_process_cores"].values())
    lines = [
        f"# {d['label']}: {'PASSED' if d['ok'] else 'FAILED'}",
        "",
        f"{d['started_at']} · {d['server']} · {rate} · "
        f"{c['viewers']} viewers, {c['overlays']} overlays · "
        f"{len(gen['per_process_cores'])} generator processes",
        "",
        "| figure | value | generator CPU beside it |",
        "| --- | --- | --- |",
        f"| settled gifts/s (first acks / {d['active_s']:.1f} s) | "
        f"{d['settled_gifts_per_s']:,.0f} (peak {d['peak_gifts_per_s']:,.0f}) | "
        f"{gen_cores:.2f} cores ({per_proc}) |",
        f"| overlay deliveries/s (events) | {d['deliveries_per_s']['overlay_events']:,.0f} | "
        f"{gen['cpu_us_per_frame'] or 0:.1f} µs CPU per frame |",
        f"| viewer deliveries/s (events; frames) | "
        f"{d['deliveries_per_s']['viewer_events']:,.0f}; "
        f"{d['deliveries_per_s']['viewer_frames']:,.0f} | |",
        f"| gift → ack p50 / p90 / p99 / max (ms) | {_ms(d['ack'])} | |",
        f"| gift → overlay p50 / p90 / p99 / max (ms) | {_ms(d['overlay'])} | |",
        f"| generator CPU per settled gift | {gen['cpu_us_per_settled_gift'] or 0:,.0f} µs | |",
        f"| schedule lag max (ms) | {d['schedule_lag_ms_max']:.1f} | |",
        "",
        "Server CPU (cores, over the send phase): "
        + ", ".join(f"{k} {v:.2f}" for k, v in d["server_cpu"].items())
        + f". The machine: {d['machine_cpu']['busy_cores']:.2f} of "
        f"{d['machine_cpu']['cores']} cores busy, "
        f"{d['machine_cpu']['other_processes_cores']:.2f} by processes outside this run.",
        "",
        f"Persister: lag max {d['persister']['lag_max_entries']:,} entries / "
        f"{d['persister']['lag_max_ms']:,.0f} ms; caught up "
        f"{d['persister']['catch_up_after_sends_s']} s after the last reply.",
        "",
        "## Traffic",
        "",
        f"frames {c['frames_sent']:,} = gifts {c['gifts_sent']:,} + retries "
        f"{c['retries_sent']:,} + bad {c['bad_frames_sent']:,}; settled {c['settled_gifts']:,}, "
        f"replays {c['replays']:,}, refused for funds {c['refused_insufficient_funds']:,}, "
        f"bad frames refused {c['refused_bad_frames']:,}, retryable errors "
        f"{c['retryable_errors']:,}; reconnects: viewers {c['viewer_reconnects']}, "
        f"overlays {c['overlay_reconnects']}; "
        f"server closes {c['server_closes_by_code'] or 'none'}.",
        "",
        "## Checks",
        "",
        d["checks"]["headline"],
        "",
    ]
    for check in d["checks"]["checks"]:
        mark = "✅" if check["ok"] else "❌"
        lines.append(
            f"- {mark} {check['name']}" + (f" — {check['detail']}" if check["detail"] else "")
        )
    prof = d.get("profile")
    if prof:
        lines += [
            "",
            "## Where the server's time goes (py-spy)",
            "",
            f"The app processes were busy {prof['busy_pct']}% of the send phase "
            f"({prof['samples']:,} samples at {prof.get('rate_hz', 200)} Hz). "
            "Shares of the busy samples:",
            "",
            "| area (leaf frame) | % | function (self time) | % | function (inclusive) | % |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        rows = zip(prof["by_area_pct"], prof["self_pct"], prof["inclusive_pct"], strict=False)
        for (a, ap), (s, sp), (i, ip) in list(rows)[:12]:
            lines.append(f"| {a} | {ap} | `{s}` | {sp} | `{i}` | {ip} |")
    lines += [
        "",
        "Plots: throughput.png, latency.png, latency_distribution.png, cpu.png.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- plots


def _style() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "font.size": 10,
         "axes.spines.top": False, "axes.spines.right": False}
    )  # fmt: skip
    return plt


def plot(d: dict[str, Any], folder: Path) -> None:
    """Write the four PNGs of a result into ``folder``."""
    plt = _style()
    s = d["series"]
    t = s.get("t", [])
    cfg = d["config"]
    if cfg.get("trace"):
        rate = f"replay at speed {cfg['speed']}" if cfg["rate"] else "replay as fast as possible"
    elif d.get("target_rate"):
        rate = f"{d['target_rate']:,.0f}/s {cfg['pattern']}"
    else:
        rate = "as fast as possible"
    title = f"{d['label']} ({rate}, {d['counts']['viewers']} viewers)\n{d['server']}"
    end = d.get("duration_s")
    panels = (
        ("throughput", "Throughput", _throughput),
        ("latency", "Latency over time", _latency),
        ("cpu", "CPU by role", _cpu),
    )
    for name, heading, draw in panels:
        fig, ax = plt.subplots(figsize=(10, 5.4))
        draw(ax, d, s, t)
        if end:
            ax.axvline(end, color="#444444", lw=0.8, ls="-.")
            ax.annotate("sends end", xy=(end, 1.0), xycoords=("data", "axes fraction"),
                        fontsize=7, ha="right", va="top", rotation=90)  # fmt: skip
        _finish(plt, fig, ax, f"{heading} — {title}", folder / f"{name}.png")
    fig, ax = plt.subplots(figsize=(10, 5.4))
    _distribution(ax, d, s, t)
    _finish(plt, fig, ax, f"Latency distribution — {title}", folder / "latency_distribution.png")


def _legend(ax: Any, handles: list[Any], labels: list[str]) -> None:
    """The legend under the plot, where it hides no line."""
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8,
              ncols=min(4, max(1, len(labels))), frameon=False)  # fmt: skip


def _finish(plt: Any, fig: Any, ax: Any, title: str, out: Path) -> None:
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def _throughput(ax: Any, d: dict[str, Any], s: dict[str, Any], t: list[float]) -> None:
    ax.plot(t, s.get("sent_per_s", []), label="frames sent/s", color="#999999", lw=1)
    ax.plot(
        t, s.get("acked_per_s", []), label="settled gifts/s (first acks)", color="#1f77b4", lw=2
    )
    ax.plot(t, s.get("overlay_gifts_per_s", []), label="overlay gift deliveries/s", color="#2ca02c",
            lw=1.2, ls="--")  # fmt: skip
    if d.get("target_rate"):
        ax.axhline(d["target_rate"], color="#d62728", lw=0.8, ls=":", label="target rate (peak)")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("per second")
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    ax2.plot(t, s.get("viewer_events_per_s", []), label="viewer deliveries/s (events, right)",
             color="#ff7f0e", lw=1, alpha=0.8)  # fmt: skip
    ax2.set_ylabel("viewer events per second")
    ax2.set_ylim(bottom=0)
    ax2.grid(False)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    _legend(ax, lines[0] + lines2[0], lines[1] + lines2[1])


def _latency(ax: Any, d: dict[str, Any], s: dict[str, Any], t: list[float]) -> None:
    styles = (
        ("ack_p50_ms", "gift → ack p50", "#1f77b4", "-"),
        ("ack_p99_ms", "gift → ack p99", "#1f77b4", "--"),
        ("overlay_p50_ms", "gift → overlay p50", "#2ca02c", "-"),
        ("overlay_p99_ms", "gift → overlay p99", "#2ca02c", "--"),
    )
    any_point = False
    for key, label, color, ls in styles:
        ys = s.get(key, [])
        pts = [(x, y) for x, y in zip(t, ys, strict=False) if y is not None and y > 0]
        if pts:
            any_point = True
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label, color=color, ls=ls,
                    marker="o" if len(pts) < 30 else None, ms=3)  # fmt: skip
    if any_point:
        ax.set_yscale("log")
        _legend(ax, *ax.get_legend_handles_labels())
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("milliseconds (log)")


def _distribution(ax: Any, d: dict[str, Any], s: dict[str, Any], t: list[float]) -> None:
    for key, label, color in (("ack_curve", "gift → ack", "#1f77b4"),
                              ("overlay_curve", "gift → overlay", "#2ca02c")):  # fmt: skip
        pts = [(p, ms) for p, ms in s.get(key, []) if p < 100]
        if not pts:
            continue
        xs = [1 / (1 - p / 100) for p, _ in pts]
        ax.plot(xs, [ms for _, ms in pts], label=label, color=color, lw=2)
    ticks = [1, 2, 10, 100, 1000, 10000]
    ax.set_xscale("log")
    ax.set_xticks(ticks)
    ax.set_xticklabels(["0%", "50%", "90%", "99%", "99.9%", "99.99%"])
    ax.set_xlim(1, 10000)
    ax.set_ylim(bottom=0)
    for key, color in (("ack", "#1f77b4"), ("overlay", "#2ca02c")):
        summary = d[key]
        if summary["count"]:
            ax.annotate(
                f"{key}: p50 {summary['p50_ms']:.1f} ms, p99 {summary['p99_ms']:.1f} ms, "
                f"max {summary['max_ms']:.1f} ms ({summary['count']:,} samples)",
                xy=(0.01, 0.95 if key == "ack" else 0.88), xycoords="axes fraction",
                color=color, fontsize=8, va="top",
            )  # fmt: skip
    ax.set_xlabel("percentile")
    ax.set_ylabel("milliseconds")
    _legend(ax, *ax.get_legend_handles_labels())


def _cpu(ax: Any, d: dict[str, Any], s: dict[str, Any], t: list[float]) -> None:
    cpu: dict[str, list[list[float]]] = s.get("cpu", {})
    generator: dict[float, float] = {}
    for name, pts in cpu.items():
        if name.startswith("generator-") or name == "storm-parent":
            for x, y in pts:
                generator[x] = generator.get(x, 0.0) + y
    series: dict[str, list[tuple[float, float]]] = {
        "generator (all processes)": sorted(generator.items())
    }
    for name, pts in cpu.items():
        if not name.startswith("generator-") and name != "storm-parent":
            series[name] = [(x, y) for x, y in pts]
    for name, line in series.items():
        if line:
            ax.plot([p[0] for p in line], [p[1] for p in line], label=name, lw=1.5)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("cores used")
    ax.set_ylim(bottom=0)
    lag = s.get("persister_lag", [])
    if lag:
        ax2 = ax.twinx()
        ax2.plot([p[0] for p in lag], [p[2] for p in lag], label="persister lag (ms, right)",
                 color="#7f7f7f", ls=":", lw=1.2)  # fmt: skip
        ax2.set_ylabel("persister lag (ms)")
        top = max((p[2] for p in lag), default=0)
        ax2.set_ylim(0, max(10.0, math.ceil(top * 1.1)))
        ax2.grid(False)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        _legend(ax, h1 + h2, l1 + l2)
    else:
        _legend(ax, *ax.get_legend_handles_labels())
