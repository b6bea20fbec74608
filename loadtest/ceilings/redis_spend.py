"""Ceiling: ``redis-benchmark`` running gifting's own spend.lua, the money-path bound.

A private Redis (:class:`gifting.embedded.EmbeddedRedis`, append-only file,
``appendfsync always`` like the embedded default) gets the project's
spend.lua (``SCRIPT LOAD``) and a funded wallet; then the C ``redis-benchmark``
sends ``EVALSHA <sha> <numkeys> <keys> <args>`` exactly as
:func:`gifting.store.spends.spend_call` builds them for a one-coin Rose gift,
with ``__rand_int__`` in the client message id (a fresh spend-result key each
call, so every call is a real, new debit) and in the event id. The outbox
length before and after tells how many calls really debited
(``fresh_spends``), so a run whose calls failed or replayed cannot pass for
fast.

:func:`redis_spend_ceiling` runs it pipelined (``-P 16``) and not (``-P 1``).
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from loadtest.ceilings.common import HOST, Mode, machine_busy, machine_times, pick

__all__ = ["RedisBenchRun", "RedisSpendFigures", "redis_spend_ceiling", "spend_command"]

_CLIENT_ID = "RANDCLIENTID"
_SENDER = "bench-viewer-1"
_KEYSPACE = 2**31 - 1  # redis-benchmark's -r is an int; collisions are ~n^2/2^32


@dataclass(frozen=True, slots=True)
class RedisBenchRun:
    """One ``redis-benchmark`` run of spend.lua."""

    name: str
    spends_per_s: float
    p50_ms: float
    p99_ms: float
    calls: int
    fresh_spends: int
    clients: int
    pipeline: int
    duration_s: float
    server_cpu_s: float
    generator_cpu_s: float
    machine_busy: float

    def summary(self) -> str:
        """One line for a report."""
        return (
            f"{self.name}: {self.spends_per_s:,.0f} spends/s (-c {self.clients} "
            f"-P {self.pipeline}), p50 {self.p50_ms:.2f} ms p99 {self.p99_ms:.2f} ms, "
            f"{self.fresh_spends:,}/{self.calls:,} fresh debits; cpu redis "
            f"{self.server_cpu_s:.2f} s, redis-benchmark {self.generator_cpu_s:.2f} s "
            f"in {self.duration_s:.1f} s, machine {self.machine_busy:.0%} busy"
        )


@dataclass(frozen=True, slots=True)
class RedisSpendFigures:
    """spend.lua under ``redis-benchmark``, pipelined and one call per round trip."""

    pipelined: RedisBenchRun
    unpipelined: RedisBenchRun
    appendfsync: str

    def summary(self) -> str:
        """Two lines for a report."""
        return f"{self.pipelined.summary()}\n{self.unpipelined.summary()}"


def spend_command(
    sha: str, *, prefix: str = "g", now_ms: int | None = None, nonce: str | None = None
) -> list[str]:
    """``EVALSHA <sha> <numkeys> <keys...> <args...>`` of a Rose gift, as ``spend_call`` builds it.

    The client message id is ``b<nonce>-__rand_int__`` and the event id ends
    in ``__rand_int__``, so each ``redis-benchmark`` call is a fresh spend.
    The nonce (random unless given) differs per command: redis-benchmark
    seeds its random numbers with ``time ^ pid``, so two runs a second
    apart with consecutive pids can draw the very same ids, which would
    replay instead of debiting.
    """
    from gifting.core.catalog import load_catalog
    from gifting.core.pricing import price_gift
    from gifting.store.keys import Keys
    from gifting.store.spends import SpendOrder, spend_call

    catalog = load_catalog()
    order = SpendOrder(
        sender=_SENDER,
        sender_name="Bench Viewer",
        client_id=_CLIENT_ID,
        priced=price_gift(catalog, "rose", 1),
        stream="s-bench",
        creator="bench-creator",
    )
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    call = spend_call(Keys(prefix), order, live=True, now=now)  # pure: no connection
    fresh = f"b{nonce if nonce is not None else secrets.token_hex(4)}-__rand_int__"
    keys = [k.replace(_CLIENT_ID, fresh) for k in call.keys]
    args = [str(a).replace(_CLIENT_ID, fresh) for a in call.args]
    args[3] = args[3][:12] + "__rand_int__"  # ARGV[4], the event id: e + 11 hex ms + 12 random
    return ["EVALSHA", sha, str(len(keys)), *keys, *args]


def _run(
    url: str, command: list[str], requests: int, clients: int, pipeline: int, timeout_s: float
) -> tuple[dict[str, str], float, float]:
    """Run redis-benchmark once; its CSV row, the wall seconds and its own CPU seconds."""
    exe = shutil.which("redis-benchmark")
    if exe is None:
        raise RuntimeError("redis-benchmark is not on PATH (Debian: apt-get install redis-tools)")
    target = urlsplit(url)
    password = ["-a", target.password] if target.password else []
    argv = [
        exe, "-h", target.hostname or HOST, "-p", str(target.port or 6379), *password,
        "-n", str(requests), "-c", str(clients), "-P", str(pipeline), "-r", str(_KEYSPACE),
        "--csv", *command,
    ]  # fmt: skip
    with tempfile.TemporaryFile() as out:
        began = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        while True:  # wait4 (not wait) to get the child's own CPU usage
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - began > timeout_s:
                proc.send_signal(signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                raise TimeoutError(f"redis-benchmark took more than {timeout_s:.0f} s")
            time.sleep(0.005)
        elapsed = time.monotonic() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed ({proc.returncode}): {text[-2000:]}")
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r.get("rps")]
    if not rows:
        raise RuntimeError(f"redis-benchmark printed no result: {text[-2000:]}")
    return rows[-1], elapsed, usage.ru_utime + usage.ru_stime


def _bench(url: str, *, name: str, clients: int, pipeline: int, duration_s: float) -> RedisBenchRun:
    """Calibrate on a short run, then run for about ``duration_s``; count the real debits."""
    import redis

    from gifting.store.keys import Keys, shard_of
    from gifting.store.scripts import script_source

    client = redis.Redis.from_url(url)
    try:
        sha = str(client.script_load(script_source("spend")))
        keys = Keys("g")
        client.hset(keys.wallet(_SENDER), "coins", str(10**15))
        outbox = keys.outbox(shard_of(_SENDER))
        probe = max(1000, clients * pipeline * 20)
        _row, took, _cpu = _run(url, spend_command(sha), probe, clients, pipeline, 60.0)
        requests = max(probe, int(probe / max(took, 1e-3) * duration_s))

        def cpu() -> float:
            info = client.info("cpu")
            return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

        before, cpu0, m0 = int(client.xlen(outbox)), cpu(), machine_times()
        row, elapsed, gen_cpu = _run(
            url, spend_command(sha), requests, clients, pipeline, max(60.0, 6 * duration_s)
        )
        after, cpu1, m1 = int(client.xlen(outbox)), cpu(), machine_times()
    finally:
        client.close()
    return RedisBenchRun(
        name=name,
        spends_per_s=float(row["rps"]),
        p50_ms=float(row.get("p50_latency_ms") or 0.0),
        p99_ms=float(row.get("p99_latency_ms") or 0.0),
        calls=requests,
        fresh_spends=after - before,
        clients=clients,
        pipeline=pipeline,
        duration_s=elapsed,
        server_cpu_s=cpu1 - cpu0,
        generator_cpu_s=gen_cpu,
        machine_busy=machine_busy(m0, m1),
    )


def redis_spend_ceiling(
    *,
    mode: Mode = "full",
    duration_s: float | None = None,
    clients: int = 50,
    pipeline: int = 16,
    redis_url: str | None = None,
    appendfsync: Literal["always", "everysec"] = "always",
    data_dir: Path | str | None = None,
) -> RedisSpendFigures:
    """Spends/s of spend.lua under ``redis-benchmark``, with ``-P pipeline`` and with ``-P 1``.

    Starts a private Redis (``appendfsync`` as given, under ``data_dir`` or a
    temporary folder) unless ``redis_url`` names one (keys use the prefix
    ``g``; use a Redis of its own). Each run lasts about ``duration_s``
    (1 s quick, 10 s full) after a short calibration run.
    """
    from gifting.embedded import EmbeddedRedis

    duration = duration_s if duration_s is not None else pick(mode, 1.0, 10.0)
    tmp = None if data_dir is not None or redis_url else tempfile.mkdtemp(prefix="ceiling-redis-")
    server: EmbeddedRedis | None = None
    try:
        if redis_url is None:
            server = EmbeddedRedis(data_dir or tmp or ".", appendfsync=appendfsync)
            server.start()
            url = server.url
        else:
            url = redis_url
        piped = _bench(
            url, name="redis-benchmark spend.lua pipelined",
            clients=clients, pipeline=pipeline, duration_s=duration,
        )  # fmt: skip
        single = _bench(
            url, name="redis-benchmark spend.lua -P 1",
            clients=clients, pipeline=1, duration_s=duration,
        )  # fmt: skip
    finally:
        if server is not None:
            server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return RedisSpendFigures(piped, single, appendfsync if redis_url is None else "external")
