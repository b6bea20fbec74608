"""Where the server's time goes: py-spy on its app processes during the send phase.

:func:`start` runs ``py-spy record --format raw`` (collapsed stacks) on each
app process for the send phase; :func:`summarize` reads the stacks back and
tells the share of samples per function (self and inclusive) and per area
(the package a leaf frame is in: uvicorn, websockets, redis, gifting/hub...).
py-spy skips idle threads, so shares are of the busy time; ``busy_pct`` is the
busy samples over the samples a fully busy process would give.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

__all__ = ["RATE_HZ", "start", "stop", "summarize"]

RATE_HZ: Final = 200
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def start(pids: list[int], out: Path, seconds: float) -> list[subprocess.Popen[bytes]]:
    """Start one py-spy per pid, writing ``out/server-PID.folded`` after ``seconds``."""
    spy = Path(sys.executable).parent / "py-spy"
    exe = str(spy) if spy.exists() else "py-spy"
    out.mkdir(parents=True, exist_ok=True)
    procs = []
    for pid in pids:
        args = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                "--rate", str(RATE_HZ), "--format", "raw", "--nonblocking",
                "-o", str(out / f"server-{pid}.folded")]  # fmt: skip
        try:
            procs.append(
                subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        except OSError as exc:
            sys.stderr.write(f"storm: py-spy not started ({exc}); no profile\n")
    return procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop the recorders still running (SIGINT: py-spy writes what it has) and wait."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _area(file: str) -> str:
    if file == "asyncio/runners.py":
        return "event loop (uvloop, in C)"
    parts = file.split("/")
    if parts[0] == "gifting" and len(parts) > 1:
        return "/".join(parts[:2]).removesuffix(".py")
    if file.startswith("<"):
        return "other"
    return parts[0].removesuffix(".py")


def _parse(frame: str) -> tuple[str, str]:
    """(``function (file)`` without the line number, area) of a py-spy frame."""
    m = _FRAME.match(frame)
    if m is None:
        return frame, "other"
    return f"{m['func']} ({m['file']})", _area(m["file"])


def summarize(folder: Path, seconds: float, top: int = 25) -> dict[str, Any]:
    """Shares of the samples in ``folder/server-*.folded`` (empty if there are none)."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    area: dict[str, int] = {}
    total = 0
    files = sorted(folder.glob("server-*.folded"))
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, n_text = line.rpartition(" ")
            if not n_text.isdigit() or not stack:
                continue
            n = int(n_text)
            frames = [_parse(f) for f in stack.split(";")]
            total += n
            leaf, leaf_area = frames[-1]
            own[leaf] = own.get(leaf, 0) + n
            area[leaf_area] = area.get(leaf_area, 0) + n
            for name in {f for f, _ in frames}:
                incl[name] = incl.get(name, 0) + n
    if not total:
        return {}

    def table(d: dict[str, int], n: int) -> list[tuple[str, float]]:
        ranked = sorted(d.items(), key=lambda kv: -kv[1])[:n]
        return [(k, round(100 * v / total, 1)) for k, v in ranked]

    # Frames on every busy sample (the process's entry chain) say nothing: drop them.
    everywhere = {k for k, v in incl.items() if v >= 0.98 * max(incl.values())}
    possible = RATE_HZ * seconds * len(files)
    return {
        "samples": total,
        "rate_hz": RATE_HZ,
        "busy_pct": round(100 * total / possible, 1) if possible else None,
        "by_area_pct": table(area, 15),
        "self_pct": table(own, top),
        "inclusive_pct": table({k: v for k, v in incl.items() if k not in everywhere}, top),
    }
