"""The pure parts of the storm: patterns, the wallet model, traces, packages, profiles."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from loadtest.clients import Req, Shared, ViewerClient
from loadtest.config import BAD_FRAMES, rate_at, shot_times
from loadtest.model import Verdict, WalletModel
from loadtest.plan import ViewerSpec, assign_worker, event_hash
from loadtest.profile import summarize
from loadtest.setup import packages_for
from loadtest.stats import Recorder
from loadtest.trace import TraceError, TraceEvent, TraceWriter, read_trace

SAMPLE = Path(__file__).parents[2] / "loadtest" / "traces" / "sample_storm.jsonl"


@pytest.mark.parametrize("pattern", ["steady", "ramp", "burst"])
def test_shot_times_follow_the_rate(pattern: str) -> None:
    times = list(shot_times(pattern, 10.0, 200.0, 5.0))  # type: ignore[arg-type]
    expected = sum(rate_at(pattern, i / 1000, 10.0, 200.0, 5.0) / 1000 for i in range(10_000))  # type: ignore[arg-type]
    assert abs(len(times) - expected) <= 1
    assert times == sorted(times) and times[0] >= 0 and times[-1] < 10.0


def test_burst_spikes_between_30_and_60_percent() -> None:
    times = list(shot_times("burst", 10.0, 500.0, 5.0))
    spike = [t for t in times if 3.0 <= t < 6.0]
    before = [t for t in times if t < 3.0]
    assert len(spike) == pytest.approx(1500, abs=2)
    assert len(before) == pytest.approx(300, abs=2)


def test_model_debits_once_and_replays_the_first_outcome() -> None:
    m = WalletModel(balance=10)
    assert m.check_spend("a", 4, "ack", "e1", 6, None) == Verdict.NEW_ACK
    assert m.check_spend("a", 4, "ack", "e1", 6, None) == Verdict.REPLAY
    assert m.check_spend("b", 7, "error", None, None, "insufficient_funds") == Verdict.REFUSED
    assert m.check_spend("b", 7, "error", None, None, "insufficient_funds") == Verdict.REPLAY
    assert m.check_spend("c", 6, "error", None, None, "unavailable") == Verdict.RETRY
    assert m.check_spend("c", 6, "ack", "e2", 0, None) == Verdict.NEW_ACK
    assert (m.balance, m.debited, m.acked, m.mismatches) == (0, 10, 2, 0)


def test_model_flags_what_the_server_should_not_say() -> None:
    m = WalletModel(balance=10)
    assert m.check_spend("a", 4, "ack", "e1", 7, None) == Verdict.MISMATCH  # wrong balance
    assert m.check_spend("a", 4, "ack", "e9", 7, None) == Verdict.MISMATCH  # another event
    assert m.check_spend("b", 50, "ack", "e2", 0, None) == Verdict.MISMATCH  # overspent
    assert m.check_bad("ack", None, "not_json") == Verdict.MISMATCH
    assert m.check_bad("error", "bad_request", "not_json") == Verdict.REFUSED
    assert m.mismatches == 4 and m.examples


def test_bad_frames_carry_a_fresh_id_slot_or_none() -> None:
    assert len({name for name, _ in BAD_FRAMES}) == len(BAD_FRAMES)
    assert all(len(frame) < 200 for _, frame in BAD_FRAMES)


def test_trace_round_trip(tmp_path: Path) -> None:
    out = io.StringIO()
    writer = TraceWriter(out, rooms=["r1"], funds={"u2": 70})
    writer.write(TraceEvent(0.0, "r1", "u1", "rose", 1, "u1-1"))
    writer.write(TraceEvent(12.5, "r2", "u2", "lion", 1, "u2-1"))
    path = tmp_path / "t.jsonl"
    path.write_text(out.getvalue())
    trace = read_trace(path)
    assert trace.rooms == ["r1", "r2"]
    assert trace.funds == {"u2": 70}
    assert [e.t_ms for e in trace.events] == [0.0, 12.5]
    assert trace.senders_by_room() == {"r1": ["u1"], "r2": ["u2"]}


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ('{"t_ms":-1,"room":"r1","sender":"u1","gift":"rose"}', "t_ms"),
        ('{"t_ms":1,"room":"r 1","sender":"u1","gift":"rose"}', "room"),
        ('{"t_ms":1,"room":"r1","sender":"u1","gift":"rose","count":0}', "count"),
        ('{"t_ms":1,"room":"r1","sender":"u1","gift":"rose","coins":5}', "unknown field"),
        ('{"t_ms":1,"room":"r1","sender":"u1","gift":"rose","id":"a:b"}', "id"),
        ("not json", "not JSON"),
    ],
)
def test_trace_errors_name_the_line(tmp_path: Path, line: str, why: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"format":"gifting-trace","version":1}\n' + line + "\n")
    with pytest.raises(TraceError, match=why) as info:
        read_trace(path)
    assert ":2:" in str(info.value)


def test_trace_must_not_go_back_in_time(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"format":"gifting-trace","version":1}\n'
        '{"t_ms":5,"room":"r1","sender":"u1","gift":"rose"}\n'
        '{"t_ms":4,"room":"r1","sender":"u1","gift":"rose"}\n'
    )
    with pytest.raises(TraceError, match="back in time"):
        read_trace(path)


def test_the_sample_trace_is_valid_and_storm_shaped() -> None:
    trace = read_trace(SAMPLE)
    assert trace.rooms == ["r1", "r2", "r3"]
    gifts = [e.gift for e in trace.events]
    assert gifts.count("rose") > len(gifts) / 2
    per_s = [0] * 31
    for e in trace.events:
        per_s[int(e.t_ms // 1000)] += 1
    assert max(per_s[12:19]) > 1.5 * max(per_s[:10])  # the burst
    ids = [(e.sender, e.id) for e in trace.events]
    assert len(set(ids)) < len(ids)  # a few retries with the same id


def test_packages_cover_what_is_needed_with_few_purchases() -> None:
    packages = [("p70", 70, 99, "USD"), ("p350", 350, 499, "USD"), ("p17500", 17500, 24999, "USD")]
    assert [p[0] for p in packages_for(100, packages)] == ["p350"]
    assert [p[0] for p in packages_for(35_001, packages)] == ["p17500", "p17500", "p70"]
    assert packages_for(0, packages) == []


def test_assignment_keeps_rooms_whole_when_it_can() -> None:
    assert {assign_worker(4, 2, 1, m) for m in range(10)} == {1}
    assert {assign_worker(1, 2, 0, m) for m in range(10)} == {0, 1}


def test_event_hash_is_signed_64_bit() -> None:
    h = event_hash("e123")
    assert -(2**63) <= h < 2**63 and h == event_hash("e123") != event_hash("e124")


def test_profile_summary_groups_by_function_and_area(tmp_path: Path) -> None:
    (tmp_path / "server-1.folded").write_text(
        "main (app.py:1);send (uvicorn/x.py:5) 30\n"
        "main (app.py:1);send (uvicorn/x.py:7) 10\n"
        "main (app.py:1);spend (gifting/hub/spends.py:9) 60\n"
    )
    s = summarize(tmp_path, seconds=1.0)
    assert s["samples"] == 100 and s["busy_pct"] == 50.0
    assert dict(s["self_pct"])["send (uvicorn/x.py)"] == 40.0
    assert dict(s["by_area_pct"]) == {"gifting/hub": 60.0, "uvicorn": 40.0}


def test_model_follows_the_server_after_an_unknown_outcome() -> None:
    m = WalletModel(balance=10)
    assert m.check_spend("a", 4, "error", None, None, "unavailable") == Verdict.RETRY
    # "a" was debited after all: "b" sees 10 - 4 - 3; the model takes the server's word
    assert m.check_spend("b", 3, "ack", "e2", 3, None) == Verdict.NEW_ACK
    assert m.check_spend("a", 4, "ack", "e1", 6, None) == Verdict.NEW_ACK
    assert m.check_spend("c", 3, "ack", "e3", 0, None) == Verdict.NEW_ACK  # one more to resync
    assert m.check_spend("d", 1, "error", None, None, "insufficient_funds") == Verdict.REFUSED
    assert (m.debited, m.acked, m.mismatches, m.lenient) == (10, 3, 0, False)


def _viewer() -> ViewerClient:
    shared = Shared(Recorder(bucket_ns=10**9, t0=time.monotonic_ns()), 0.0, 1, False)
    client = ViewerClient(shared, ViewerSpec("u1", "u1", 0), "ws://x", "t", "r1")
    client.model.balance = client.model.funded = 100
    return client


def test_viewer_matches_replies_by_id_and_idless_errors_to_the_oldest_bad_frame() -> None:
    v = _viewer()
    now = time.monotonic_ns()
    v.send(Req("g1", b"", 5, "rose", 5, "", False), now)
    v.send(Req("b1", b"{not json", 0, "", 0, "not_json", False, keyed=False), now)
    v.send(Req("g2", b"", 1, "rose", 1, "", False), now)
    v.send(Req("b2", b"", 0, "", 0, "zero_count", False), now)
    # bad frames are refused at once, ahead of the spends still settling
    v._on_reply(b'{"op":"error","code":"bad_request","message":"x"}')
    v._on_reply(b'{"op":"error","id":"b2","code":"bad_request","message":"x"}')
    v._on_reply(b'{"op":"ack","id":"g1","event":"e1","balance":95,"combo":5}')
    v._on_reply(b'{"op":"ack","id":"g2","event":"e2","balance":94,"combo":6}')
    c = v.shared.counts
    assert (c.new_acks, c.refused_bad, c.mismatches, c.stray_replies) == (2, 2, 0, 0)
    assert v.outstanding == 0 and not v.order and not v.by_id
    assert v.shared.acked == {0: [("e1", 5), ("e2", 1)]}
