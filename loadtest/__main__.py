"""``python -m loadtest storm | replay | bench``.

* ``storm``: a synthetic gift storm against a server it starts (or ``--url``),
  then the checks; exit 1 if any check failed, 2 if it could not run;
* ``replay TRACE``: the same, with the gifts of a recorded trace;
* ``bench``: the benchmark (:func:`loadtest.bench.main`).

Run ``python -m loadtest storm --help`` for every option.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

__all__ = ["main"]


def _server_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("server (default: start private Redis + PostgreSQL and gifting serve)")
    g.add_argument(
        "--url",
        help="target a running server (needs REDIS_URL, DATABASE_URL, "
        "GIFTING_JWT_SECRET and GIFTING_WEBHOOK_SECRET in the environment)",
    )
    g.add_argument(
        "--redis-url", help="start gifting serve against this Redis (with --database-url)"
    )
    g.add_argument("--database-url", help="... and this PostgreSQL database (the storm's own)")
    g.add_argument("--workers", type=int, default=1, help="gifting serve --workers (default 1)")
    g.add_argument(
        "--hubs",
        type=int,
        default=1,
        help="gifting serve processes, each on its own port (default 1); rooms span them",
    )
    g.add_argument(
        "--persisters",
        type=int,
        default=0,
        help="gifting persist processes (implies --persister separate; they share the shards)",
    )
    g.add_argument(
        "--cluster",
        action="store_true",
        help="start a private 3-master Redis Cluster instead of a single Redis "
        "(or give --redis-url redis+cluster://...)",
    )
    g.add_argument(
        "--persister",
        choices=("in-process", "separate"),
        default="in-process",
        help="persister inside the server or as a `gifting persist` process",
    )
    g.add_argument(
        "--appendfsync",
        choices=("always", "everysec"),
        default="always",
        help="the private Redis' AOF fsync policy (default always, as shipped)",
    )
    g.add_argument("--key-prefix", default="g", help="Redis key prefix (GIFTING_KEY_PREFIX)")
    g.add_argument(
        "--server-pid",
        type=int,
        action="append",
        default=[],
        help="with --url: a server pid to report the CPU of (repeatable)",
    )
    g.add_argument("--keep-dir", action="store_true", help="keep the server's temp folder")
    g.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the server's app processes during the send phase (needs --report)",
    )


def _run_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("generator")
    g.add_argument("--processes", type=int, default=2, help="generator processes (default 2)")
    g.add_argument("--overlays", type=int, default=2, help="overlays per room (default 2)")
    g.add_argument(
        "--window",
        type=int,
        default=1,
        help="as fast as possible: requests in flight per viewer (default 1)",
    )
    g.add_argument(
        "--setup",
        choices=("api", "store"),
        default="api",
        help="streams and coins via the HTTP API and signed webhook, or the store",
    )
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--bucket", type=float, default=0.5, help="time-series resolution (s)")
    g.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="max wait for the last acks, overlay events and the persister (s)",
    )
    g.add_argument(
        "--retry-share",
        type=float,
        default=None,
        help="share of acked gifts re-sent with the same id "
        "(default: storm 0.05; replay 0, a trace has its own retries)",
    )
    g.add_argument("--report", type=Path, help="write result.json, summary.md and PNGs here")
    g.add_argument("--label", default="", help="a name for the run in the report")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    storm = sub.add_parser("storm", help="a synthetic gift storm, then the checks")
    storm.add_argument("--rooms", type=int, default=4)
    storm.add_argument("--viewers", type=int, default=25, help="viewers per room")
    storm.add_argument("--duration", type=float, default=20.0, help="seconds of sending")
    rate = storm.add_mutually_exclusive_group()
    rate.add_argument(
        "--rate",
        type=float,
        default=1000.0,
        help="target settled gifts/s over all rooms (the pattern's peak)",
    )
    rate.add_argument(
        "--max",
        action="store_true",
        help="as fast as possible (closed loop, --window in flight per viewer)",
    )
    storm.add_argument("--pattern", choices=("steady", "ramp", "burst"), default="steady")
    storm.add_argument(
        "--burst-factor",
        type=float,
        default=5.0,
        help="burst: the spike over the baseline (default 5)",
    )
    storm.add_argument(
        "--broke-share",
        type=float,
        default=0.1,
        help="share of viewers funded with only 70 coins (default 0.1)",
    )
    storm.add_argument(
        "--bad-share", type=float, default=0.01, help="share of frames that are bad (default 0.01)"
    )
    storm.add_argument(
        "--coins-per-viewer", type=int, default=35_000, help="--max: coins for each funded viewer"
    )
    storm.add_argument("--record", type=Path, help="write the run's gifts as a trace")
    storm.add_argument(
        "--no-engagement",
        dest="engagement",
        action="store_false",
        help="gifts only: no guests, video gifts, goal changes or treasure boxes beside the "
        "storm (they add about 45 s: a box opens after 10 s, claims last 30 s)",
    )
    _run_args(storm)
    _server_args(storm)

    replay = sub.add_parser("replay", help="replay a recorded trace, then the checks")
    replay.add_argument("trace", type=Path)
    replay.add_argument("--speed", type=float, default=1.0, help="time factor (2 = twice as fast)")
    replay.add_argument(
        "--as-fast-as-possible",
        action="store_true",
        help="ignore the times: each sender's gifts in order, closed loop",
    )
    replay.add_argument(
        "--duration",
        type=float,
        default=600.0,
        help="--as-fast-as-possible: stop after this many seconds",
    )
    _run_args(replay)
    _server_args(replay)

    bench = sub.add_parser("bench", help="the benchmark (loadtest.bench)", add_help=False)
    bench.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _config(a: argparse.Namespace) -> object:
    from loadtest.config import Mix, ServerOptions, StormConfig

    server = ServerOptions(
        url=a.url, redis_url=a.redis_url, database_url=a.database_url, workers=a.workers,
        persister="separate" if a.persisters else a.persister, appendfsync=a.appendfsync,
        key_prefix=a.key_prefix, hubs=a.hubs, persisters=max(1, a.persisters), cluster=a.cluster,
        server_pids=tuple(a.server_pid), keep_dir=a.keep_dir, profile=a.profile,
    )  # fmt: skip
    common = {
        "overlays": a.overlays, "window": a.window, "processes": a.processes, "seed": a.seed,
        "server": server, "setup": a.setup, "report_dir": a.report, "bucket_s": a.bucket,
        "drain_timeout_s": a.drain_timeout, "label": a.label,
    }  # fmt: skip
    if a.command == "storm":
        return StormConfig(
            rooms=a.rooms, viewers=a.viewers, duration_s=a.duration,
            rate=None if a.max else a.rate, pattern=a.pattern, burst_factor=a.burst_factor,
            mix=Mix(0.05 if a.retry_share is None else a.retry_share, a.broke_share, a.bad_share,
                    engagement=a.engagement),
            coins_per_viewer=a.coins_per_viewer, record=a.record, **common,
        )  # fmt: skip
    return StormConfig(
        trace=a.trace, speed=a.speed, rate=None if a.as_fast_as_possible else 1.0,
        duration_s=a.duration, mix=Mix(a.retry_share or 0.0, broke_share=0.0, bad_share=0.0),
        **common,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the command; the exit status (0 passed, 1 a check failed, 2 could not run)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["bench"]:  # its own options, parsed by loadtest.bench
        from loadtest import bench

        return bench.main(args[1:])
    a = _parser().parse_args(args)
    from loadtest.server import ConfigError
    from loadtest.storm import StormError, run_storm
    from loadtest.trace import TraceError

    try:
        config = _config(a)
        result = asyncio.run(
            run_storm(config, progress=lambda m: print(f"storm: {m}", file=sys.stderr))  # type: ignore[arg-type]
        )
    except (ConfigError, StormError, TraceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.summary_line())
    print(result.checks["headline"])
    for check in result.checks["checks"]:
        mark = "ok  " if check["ok"] else "FAIL"
        print(f"  [{mark}] {check['name']}" + (f": {check['detail']}" if check["detail"] else ""))
    if result.report_dir:
        print(f"report: {result.report_dir}/summary.md")
    if not result.ok:
        print("STORM FAILED: " + " | ".join(result.failures), file=sys.stderr)
        if "gifting audit passes" in " ".join(result.failures):
            print(result.checks.get("audit", ""), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
