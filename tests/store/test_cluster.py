"""Redis Cluster: the URL, slot routing of the lean pipeline (MOVED, ASK), every script on a
real cluster, the shard count and the cash-out ids that carry it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.crc import key_slot

from gifting.core.catalog import Catalog
from gifting.core.errors import NotFound
from gifting.store.cashouts import cashout_id_prefix, cashout_shard
from gifting.store.cluster import (
    ClusterWire,
    command_slot,
    is_cluster,
    is_cluster_url,
    parse_cluster_url,
)
from gifting.store.keys import SHARDS, Keys, shard_of
from gifting.store.ledger import Ledger, spend_entry
from gifting.store.rooms import RoomLog
from gifting.store.scripts import SCRIPT_NAMES, ScriptCall
from gifting.store.wire import NotReplicated, WirePipeline
from tests.cluster_support import SlotMover

from .support import buy, gift_order

# --------------------------------------------------------------------------- pure


def test_a_cluster_url_names_its_nodes_and_credentials() -> None:
    address = parse_cluster_url("redis+cluster://app:s%3Acret@10.0.0.1:7000,10.0.0.2:7001")
    assert address.nodes == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert (address.username, address.password, address.tls) == ("app", "s:cret", False)
    assert parse_cluster_url("rediss+cluster://:pw@h:1?ssl_ca_certs=/ca.pem").tls
    assert parse_cluster_url("redis+cluster://h").nodes == [("h", 6379)]
    assert is_cluster_url("redis+cluster://h:1")
    assert not is_cluster_url("redis://h:1")


@pytest.mark.parametrize(
    "url",
    ["redis://h:1", "redis+cluster://", "redis+cluster://h:x", "redis+cluster://h:1/3"],
)
def test_a_bad_cluster_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_cluster_url(url)


@given(st.text(min_size=1, max_size=40))
def test_the_slot_of_a_call_is_the_slot_of_its_first_key(key: str) -> None:
    slot = key_slot(key.encode())
    assert command_slot(["EVALSHA", "0" * 40, 2, key, "other", "arg"]) == slot
    assert command_slot(["EXISTS", key]) == slot
    assert command_slot(["EVALSHA", "0" * 40, 0, "arg"]) is None


def test_every_key_of_one_user_or_room_shares_its_slot() -> None:
    keys = Keys("g", shards=64)
    user, stream = "alice", "s1"
    shard = keys.shard_of(user)
    money = [
        keys.wallet(user), keys.spend_result(user, "m1"), keys.combo(user, stream),
        keys.purchase(user, "p1"), keys.credit_done(user, "e1"), keys.cashout(shard, "co1"),
        keys.cashout_request(user, "r1"), keys.cashouts_of(user), keys.outbox(shard),
        keys.persister_lease(shard), keys.shard_due(shard),
    ]  # fmt: skip
    room = [
        keys.stream(stream), keys.stream_totals(stream), keys.stream_top(stream),
        keys.stream_names(stream), keys.room_history(stream), keys.room_seq(stream),
        keys.room_emitted(stream, "e1"), keys.room_channel(stream),
    ]  # fmt: skip
    assert len({key_slot(k.encode()) for k in money}) == 1
    assert len({key_slot(k.encode()) for k in room}) == 1


def test_the_shard_count_is_a_setting_and_sixteen_keeps_the_old_layout() -> None:
    assert Keys("g").shards == SHARDS == 16
    assert Keys("g").wallet("alice") == f"g:{{w{shard_of('alice'):02d}}}:wallet:alice"
    wide = Keys("g", shards=1000)
    assert len(wide.outboxes()) == 1000
    assert wide.outbox(999) == "g:{w999}:outbox"
    assert all(0 <= wide.shard_of(f"u{i}") < 1000 for i in range(200))
    for bad in (0, 16385):
        with pytest.raises(ValueError):
            Keys("g", shards=bad)


@pytest.mark.parametrize("shard", [0, 7, 15, 99, 100, 16383])
def test_a_cashout_id_carries_its_shard_whatever_the_count(shard: int) -> None:
    cashout = cashout_id_prefix(shard) + "0190a1b2c3d4e5f6a7b8c9"
    assert cashout_shard(cashout, 16384) == shard


def test_old_cashout_ids_still_parse_and_junk_is_not_found() -> None:
    assert cashout_shard("co07-0190a1b2c3d4e5f6a7b8c9") == 7
    for junk in ("co", "co07", "co07-", "cx07-a", "co7-a", "co123456-a", "co１２-a", "co16-a"):
        with pytest.raises(NotFound):
            cashout_shard(junk)


# --------------------------------------------------------------------------- on a real cluster


pytestmark = pytest.mark.cluster


def _only_on_cluster(redis: Any) -> None:
    if not is_cluster(redis):
        pytest.skip("cluster only")


async def test_every_script_runs_in_one_slot(
    redis: Redis, ledger: Ledger, keys: Keys, catalog: Catalog
) -> None:
    """Each money script once (a cluster refuses a script whose keys span slots: CROSSSLOT)."""
    assert set(SCRIPT_NAMES) == {
        "spend", "purchase", "refund", "credit", "cashout_hold", "cashout_settle", "emit",
        "retire", "snapshot", "badge", "cashout_cancel", "due_take", "due_done", "goals_set",
        "box_create", "box_claim", "box_seal", "box_settle", "box_credit", "box_return",
    }  # fmt: skip
    # due_take and due_done: tests/store/test_deadlines.py runs them on the cluster;
    # goals_set: tests/hub/test_goals.py; the box_* scripts: tests/store/test_boxes.py.
    await buy(ledger, "fan", "coins_7000")
    bought = await buy(ledger, "cre", "coins_70")
    order = gift_order(catalog, "fan", "m1", "rose", 100, stream="s1", creator="cre")
    (result,) = await ledger.debit_many([order], live={"s1": True}, now=1_700_000_000_000)
    assert not isinstance(result, Exception)
    roomlog = RoomLog(redis, keys, catalog)
    entry = spend_entry(order, result, 1_700_000_000_000)
    emit = ScriptCall("emit", *roomlog.spend_emit_args(entry))
    assert await ledger.settle_many([entry], [emit]) == []
    assert (await ledger.wallet("cre")).diamonds == 50
    assert await ledger.retire([entry]) >= 1  # one call per slot: sender, creator, room
    assert (await roomlog.snapshot("s1")).seq >= 1
    await ledger.refund(bought.purchase_id)
    await ledger.credit_creator(spend_event="e-extra", creator="cre", coins=20_000, stream="s1",
                                sender="fan")  # fmt: skip
    held = await ledger.request_cashout("cre", 5_000, "r1")
    assert (await ledger.settle_cashout(held.cashout, "processing")).status == "processing"
    assert (await ledger.settle_cashout(held.cashout, "paid")).status == "paid"
    held = await ledger.request_cashout("cre", 5_000, "r2")
    cancelled, _ = await ledger.cancel_cashout("cre", held.cashout)
    assert cancelled.status == "cancelled"
    assert await ledger.grant_badge("fan", "vip") == "vip"
    await roomlog.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def wire(redis: Any) -> AsyncIterator[ClusterWire]:
    _only_on_cluster(redis)
    pipe = ClusterWire(redis)
    try:
        yield pipe
    finally:
        await pipe.close()


async def test_a_batch_over_every_node_comes_back_in_order(
    wire: ClusterWire, redis: Any, key_prefix: str
) -> None:
    names = [f"{key_prefix}:{{k{i}}}" for i in range(60)]
    assert len({redis.get_node_from_key(n).name for n in names}) == 3  # every master
    sets = await wire.execute([["SET", n, str(i)] for i, n in enumerate(names)])
    assert sets == [b"OK"] * 60
    got = await wire.execute([["GET", n] for n in names] + [["INCR", names[0]]])
    assert got == [str(i).encode() for i in range(60)] + [1]


async def test_a_call_to_a_moved_slot_follows_it_and_asking_finds_a_migrating_key(
    wire: ClusterWire, redis: Any, key_prefix: str
) -> None:
    """A slot moved after the pipeline read the map (MOVED), and one half-migrated (ASK)."""
    taken = {key_slot(f"{{w{s:02d}}}".encode()) for s in range(SHARDS)}
    tag = next(t for t in (secrets.token_hex(4) for _ in range(100))
               if key_slot(t.encode()) not in taken)  # fmt: skip
    moved_key, asked_key = f"{key_prefix}:{{{tag}}}:a", f"{key_prefix}:{{{tag}}}:b"
    slot = key_slot(moved_key.encode())
    await wire.execute([["SET", moved_key, "1"], ["SET", asked_key, "2"]])
    with SlotMover(redis, slot) as nodes:
        nodes.begin_migration()
        nodes.migrate(asked_key)  # on the target now; the source answers ASK for it
        assert await wire.execute([["GET", moved_key], ["GET", asked_key]]) == [b"1", b"2"]
        nodes.migrate(moved_key)
        nodes.finish_migration()  # the whole slot is the target's: MOVED
        assert await wire.execute([["GET", moved_key], ["INCR", asked_key]]) == [b"1", 3]
        assert wire._master_of(["GET", moved_key]) == nodes.target_name
        nodes.move_back([moved_key, asked_key])
        assert await wire.execute([["GET", moved_key], ["GET", asked_key]]) == [b"1", b"3"]


async def test_too_few_replicas_make_a_call_not_replicated(
    wire: ClusterWire, key_prefix: str
) -> None:
    """The session cluster has no replica: WAIT 1 times out, so no reply counts as acked."""
    replies = await wire.execute(
        [["SET", f"{key_prefix}:{{a}}", "1"], ["GET", "{b}"], ["NOSUCHCOMMAND"]],
        wait_replicas=1,
        wait_timeout_ms=10,
    )
    assert isinstance(replies[0], NotReplicated)
    assert isinstance(replies[1], NotReplicated)
    assert not isinstance(replies[2], NotReplicated)


async def test_the_single_redis_pipeline_waits_for_replicas_too(
    redis: Any, key_prefix: str
) -> None:
    if is_cluster(redis):
        pytest.skip("single Redis only")
    pipe = WirePipeline.like(redis)
    try:
        (reply,) = await pipe.execute(
            [["SET", f"{key_prefix}:x", "1"]], wait_replicas=1, wait_timeout_ms=10
        )
        assert isinstance(reply, NotReplicated)
        assert await pipe.execute([["GET", f"{key_prefix}:x"]], wait_replicas=0) == [b"1"]
    finally:
        await pipe.close()


async def test_readiness_pings_every_node(redis: Any) -> None:
    """`/readyz` asks each node of a cluster (one that does not answer makes the hub unready)."""
    from gifting.store.cluster import ping_every_node

    def pings(info: dict[str, Any]) -> int:
        return int(info.get("cmdstat_ping", {}).get("calls", 0))

    if not is_cluster(redis):
        await ping_every_node(redis)
        return
    nodes = redis.get_nodes()
    assert len(nodes) >= 3
    before = [pings(await redis.info("commandstats", target_nodes=n)) for n in nodes]
    await ping_every_node(redis)
    after = [pings(await redis.info("commandstats", target_nodes=n)) for n in nodes]
    assert all(a >= b + 1 for a, b in zip(after, before, strict=True))
