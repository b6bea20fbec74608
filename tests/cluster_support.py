"""Helpers of the Redis Cluster tests: move a slot between masters by hand."""

from __future__ import annotations

from typing import Any

import redis as redis_sync


class SlotMover:
    """Move one slot between two masters by hand, as ``redis-cli --cluster reshard`` does."""

    def __init__(self, cluster: Any, slot: int) -> None:
        self.slot = slot
        source = cluster.nodes_manager.get_node_from_slot(slot)
        target = next(n for n in cluster.get_primaries() if n.name != source.name)
        self.password = source.connection_kwargs.get("password")
        self.source = self._client(source)
        self.target = self._client(target)
        self.others = [self._client(n) for n in cluster.get_primaries()]
        self.target_name = target.name
        self.source_id = self.source.execute_command("CLUSTER MYID").decode()
        self.target_id = self.target.execute_command("CLUSTER MYID").decode()
        self.target_addr = (target.host, int(target.port))

    def _client(self, node: Any) -> redis_sync.Redis:
        return redis_sync.Redis(host=node.host, port=int(node.port), password=self.password)

    def __enter__(self) -> SlotMover:
        return self

    def __exit__(self, *exc: object) -> None:
        for c in [self.source, self.target, *self.others]:
            c.close()

    def begin_migration(self) -> None:
        self.target.execute_command("CLUSTER SETSLOT", self.slot, "IMPORTING", self.source_id)
        self.source.execute_command("CLUSTER SETSLOT", self.slot, "MIGRATING", self.target_id)

    def migrate(self, key: str, source: redis_sync.Redis | None = None,
                to: tuple[str, int] | None = None) -> None:  # fmt: skip
        host, port = to or self.target_addr
        (source or self.source).execute_command(
            "MIGRATE", host, port, "", 0, 5000, "AUTH", self.password, "KEYS", key
        )

    def finish_migration(self) -> None:
        for c in self.others:
            c.execute_command("CLUSTER SETSLOT", self.slot, "NODE", self.target_id)

    def move_back(self, keys: list[str]) -> None:
        self.source.execute_command("CLUSTER SETSLOT", self.slot, "IMPORTING", self.target_id)
        self.target.execute_command("CLUSTER SETSLOT", self.slot, "MIGRATING", self.source_id)
        source_addr = self.source.connection_pool.connection_kwargs
        for key in keys:
            self.migrate(key, self.target, (source_addr["host"], source_addr["port"]))
        for c in self.others:
            c.execute_command("CLUSTER SETSLOT", self.slot, "NODE", self.source_id)
