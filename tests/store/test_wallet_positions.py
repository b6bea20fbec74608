"""Every script that changes a wallet's money records the outbox id of its event (``pos``).

The audit compares each wallet with the ledger at that position
(gifting/persister/wallet_audit.py); a money script that forgot it would make
the audit compare the wallet with events it has not seen yet. Checked on the
scripts' text, so a new script cannot slip by, and on what they do.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from redis.asyncio import Redis

from gifting.store.keys import Keys
from gifting.store.ledger import Ledger

LUA = Path(__file__).parents[2] / "gifting" / "store" / "lua"
_CHANGES_WALLET = re.compile(r"HINCRBY', KEYS\[1\]")


def _money_scripts() -> list[Path]:
    return [p for p in sorted(LUA.glob("*.lua")) if _CHANGES_WALLET.search(p.read_text())]


def test_the_money_scripts_are_found() -> None:
    names = {p.stem for p in _money_scripts()}
    assert {"purchase", "refund", "spend", "credit", "cashout_hold", "cashout_settle"} <= names


@pytest.mark.parametrize("script", _money_scripts(), ids=lambda p: p.stem)
def test_a_money_script_records_its_outbox_position_in_the_wallet(script: Path) -> None:
    text = script.read_text()
    assert re.search(r"local pos = redis\.call\('XADD'", text), "the XADD's id is not kept"
    assert re.search(r"HSET', KEYS\[1\],[^\n]*'pos', pos", text), "pos is not written"


async def test_pos_is_the_id_of_the_last_event_of_the_wallet(
    redis: Redis, keys: Keys, ledger: Ledger
) -> None:
    await ledger.purchase("p-pos-1", "pia", "coins_7000", 9999, "USD")
    await ledger.purchase("p-pos-2", "pia", "coins_7000", 9999, "USD")
    last = await redis.xrevrange(keys.outbox(keys.shard_of("pia")), count=1)
    assert await redis.hget(keys.wallet("pia"), "pos") == last[0][0]
