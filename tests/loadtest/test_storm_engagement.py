"""A storm with the engagement mix: guests, video gifts, goal changes and treasure boxes.

Beside a small gift storm, two rooms get guests gifted over their own
sockets, a video gifted over HTTP (with retries), their goals replaced
halfway, and a treasure box that four claimers race for when it opens (10 s
after the drop; claims close 30 s later, so the run lasts about a minute).
Every check of the storm holds with them (each overlay sees every acked gift
once, PostgreSQL holds every acked spend, the audit passes with the box
rule), and so do the engagement's own (loadtest/engagement.py).

On one Redis only (it lasts 45 s): the same features run on a 3-master
cluster in their own tests, and `python -m loadtest storm --cluster` runs
this mix there (docs/benchmarks.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.config import Mix, ServerOptions, StormConfig
from loadtest.engagement import BOX_WINNERS, ENGAGED_ROOMS
from loadtest.storm import run_storm
from tests.loadtest.test_storm_smoke import storm_database  # noqa: F401 - a fixture


@pytest.mark.timeout(180)
async def test_a_storm_with_guests_videos_goals_and_boxes_passes_every_check(
    redis_url: str,
    storm_database: str,  # noqa: F811 - the fixture
    key_prefix: str,
    tmp_path: Path,
) -> None:
    server = ServerOptions(redis_url=redis_url, database_url=storm_database, key_prefix=key_prefix)
    config = StormConfig(
        rooms=3, viewers=4, overlays=1, duration_s=6.0, rate=100.0, processes=2,
        mix=Mix(retry_share=0.1, broke_share=0.0, bad_share=0.02, engagement=True),
        server=server, drain_timeout_s=15.0, seed=11,
    )  # fmt: skip
    result = await run_storm(config)

    assert result.ok, "\n".join(result.failures)
    names = [c["name"] for c in result.checks["checks"]]
    assert sum(n.startswith(("guests:", "videos:", "goals:", "boxes:")) for n in names) == 5
    assert "gifting audit passes after the boxes closed" in names
    eng = result.checks["engagement"]
    assert eng["ok"]
    assert eng["guest_gifts"] > 20 and eng["video_gifts"] > 5
    assert eng["boxes"] == ENGAGED_ROOMS and eng["claims"] == ENGAGED_ROOMS * BOX_WINNERS
    assert eng["goal_steps"] >= ENGAGED_ROOMS * 3  # coins 100 and 1000, confetti 3 at least
    # The storm's own spends and the engagement's in the rooms, all persisted once.
    assert result.checks["persisted"] > result.counts["settled_gifts"]
