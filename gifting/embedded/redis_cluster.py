"""A private Redis Cluster: real ``redis-server`` processes with ``cluster-enabled yes``.

For the tests and the load test (a production cluster is the operator's; see
docs/operations.md). ``EmbeddedRedisCluster(data_dir, masters=3, replicas=0)``
starts ``masters × (1 + replicas)`` servers on 127.0.0.1, each like
:class:`~gifting.embedded.redis_server.EmbeddedRedis` (its own folder, AOF,
``requirepass``) plus the cluster settings, all with one password (replicas
authenticate to their master with it), then assigns the slots with
``redis-cli --cluster create ... --cluster-yes`` and waits until every node
reports ``cluster_state:ok`` and every replica is in sync.

:attr:`url` is a ``redis+cluster://`` URL naming every master (see
:mod:`gifting.store.cluster`). :meth:`kill_master` SIGKILLs the master owning a
key's slot (the failover test) and :meth:`wait_promoted` waits until a
replica took its slots.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Literal

import redis as redis_sync
from redis import exceptions as redis_exceptions
from redis.crc import key_slot

from gifting.embedded.process import HOST, EmbeddedError, free_port, owner_secret, write_private
from gifting.embedded.redis_server import EmbeddedRedis, _redis_version, find_redis_server

__all__ = ["ClusterNodeServer", "EmbeddedRedisCluster"]

#: The failure detection of the embedded cluster: a master silent this long is failed over.
NODE_TIMEOUT_MS = 1000


class ClusterNodeServer(EmbeddedRedis):
    """One ``redis-server`` of a cluster: EmbeddedRedis plus the cluster settings."""

    name = "redis-cluster-node"

    def __init__(
        self,
        data_dir: Path,
        *,
        password: str,
        appendfsync: Literal["always", "everysec"] = "always",
        node_timeout_ms: int = NODE_TIMEOUT_MS,
    ) -> None:
        folder = Path(data_dir).resolve() / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        # Every node of the cluster shares the password (replicas use it as masterauth).
        write_private(folder / "password", password)
        super().__init__(data_dir, appendfsync=appendfsync)
        self.node_timeout_ms = node_timeout_ms
        self.bus_port = 0

    def _write_conf(self) -> None:
        super()._write_conf()
        if not self.bus_port or self.bus_port == self.port:
            self.bus_port = _free_port_except(self.port)
        extra = [
            "cluster-enabled yes",
            f'cluster-config-file "{self.dir / "nodes.conf"}"',
            f"cluster-port {self.bus_port}",
            f"cluster-node-timeout {self.node_timeout_ms}",
            f"masterauth {self.password}",
            # Shard channels move with their slots; nothing else needs full coverage.
            "cluster-require-full-coverage yes",
            "cluster-allow-reads-when-down no",
        ]
        text = self.conf_path.read_text() + "\n".join(extra) + "\n"
        write_private(self.conf_path, text)

    def client(self) -> redis_sync.Redis:
        """A plain (not cluster-aware) client of this one node."""
        return redis_sync.Redis(
            host=HOST, port=self.port, password=self.password, socket_timeout=5.0
        )


def _free_port_except(port: int) -> int:
    while True:
        candidate = free_port()
        if candidate != port:
            return candidate


class EmbeddedRedisCluster:
    """A local Redis Cluster of ``masters`` masters with ``replicas`` replicas each."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        masters: int = 3,
        replicas: int = 0,
        appendfsync: Literal["always", "everysec"] = "always",
        node_timeout_ms: int = NODE_TIMEOUT_MS,
        start_timeout_s: float = 60.0,
    ) -> None:
        if masters < 3:
            raise EmbeddedError("a Redis Cluster needs at least 3 masters")
        self.executable = find_redis_server()
        if _redis_version(self.executable) < (7,):
            raise EmbeddedError(
                f"{self.executable} is older than Redis 7 (no sharded pub/sub): "
                "install Redis >= 7 (Debian: redis-server, redis-tools)"
            )
        self.dir = Path(data_dir).resolve() / "cluster"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        self.password = owner_secret(self.dir / "password")
        self.masters = masters
        self.replicas = replicas
        self.start_timeout_s = start_timeout_s
        self.nodes = [
            ClusterNodeServer(
                self.dir / f"node{i}",
                password=self.password,
                appendfsync=appendfsync,
                node_timeout_ms=node_timeout_ms,
            )
            for i in range(masters * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        """``redis+cluster://:PASSWORD@127.0.0.1:P1,127.0.0.1:P2,...`` (every node)."""
        hosts = ",".join(f"{HOST}:{n.port}" for n in self.nodes if n.running)
        return f"redis+cluster://:{self.password}@{hosts}"

    def start(self) -> None:
        """Start every node, create the cluster, wait until it is ok everywhere."""
        try:
            for node in self.nodes:
                node.start()
            self._create()
            self.wait_ok()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every node still running (SIGTERM, then SIGKILL after a while)."""
        for node in self.nodes:
            with contextlib.suppress(Exception):
                if node.running:
                    node.stop()
                else:
                    node._lock.release()

    def _create(self) -> None:
        beside = Path(self.executable).with_name("redis-cli")
        cli = str(beside) if beside.exists() else shutil.which("redis-cli")
        if cli is None:
            raise EmbeddedError("redis-cli is needed to create a cluster (Debian: redis-tools)")
        addresses = [f"{HOST}:{n.port}" for n in self.nodes]
        cmd = [cli, "--cluster", "create", *addresses, "--cluster-yes"]
        if self.replicas:
            cmd += ["--cluster-replicas", str(self.replicas)]
        # The password goes by environment, never on a command line others can read.
        env = {**os.environ, "REDISCLI_AUTH": self.password}
        done = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=self.start_timeout_s, check=False
        )
        if done.returncode != 0 or "[OK] All 16384 slots covered" not in done.stdout:
            raise EmbeddedError(f"redis-cli --cluster create failed:\n{done.stdout}\n{done.stderr}")

    def wait_ok(self, timeout_s: float | None = None) -> None:
        """Wait until every live node says ``cluster_state:ok``, agrees on the slots
        and every live replica has finished its first sync."""
        deadline = time.monotonic() + (timeout_s or self.start_timeout_s)
        while True:
            problem = self._problem()
            if not problem:
                return
            if time.monotonic() > deadline:
                raise EmbeddedError(f"the cluster is not ok: {problem}")
            time.sleep(0.05)

    def _problem(self) -> str:
        live = [n for n in self.nodes if n.running]
        masters = 0
        for node in live:
            client = node.client()
            try:
                info = client.cluster("info")
                if info.get("cluster_state") != "ok":
                    return f"{node.port}: cluster_state {info.get('cluster_state')}"
                if int(info.get("cluster_known_nodes", 0)) < len(live):
                    return f"{node.port}: knows {info.get('cluster_known_nodes')} nodes"
                replication = client.info("replication")
                if replication.get("role") == "master":
                    masters += 1
                elif replication.get("master_link_status") != "up" or replication.get(
                    "master_sync_in_progress"
                ):
                    return f"{node.port}: replica not in sync"
            except (redis_exceptions.RedisError, OSError) as exc:
                return f"{node.port}: {exc}"
            finally:
                client.close()
        if masters != self.masters:
            return f"{masters} masters, want {self.masters}"
        return ""

    # -- failover (tests) ------------------------------------------------------
    def master_of(self, key: str) -> ClusterNodeServer:
        """The live node that serves ``key``'s slot as a master."""
        slot = key_slot(key.encode())
        for node in self.nodes:
            if not node.running:
                continue
            client = node.client()
            try:
                for info in client.cluster("nodes").values():
                    flags = str(info.get("flags", ""))
                    if "myself" in flags and "master" in flags and _covers(info, slot):
                        return node
            except (redis_exceptions.RedisError, OSError):
                continue
            finally:
                client.close()
        raise EmbeddedError(f"no live master serves slot {slot}")

    def replica_of(self, master: ClusterNodeServer) -> ClusterNodeServer:
        """A live replica of ``master``."""
        client = master.client()
        try:
            me = client.execute_command("CLUSTER MYID")
        finally:
            client.close()
        me = me.decode() if isinstance(me, bytes) else str(me)
        for node in self.nodes:
            if node is master or not node.running:
                continue
            client = node.client()
            try:
                for info in client.cluster("nodes").values():
                    flags = str(info.get("flags", ""))
                    if "myself" in flags and "slave" in flags and info.get("master_id") == me:
                        return node
            finally:
                client.close()
        raise EmbeddedError(f"{master.port} has no live replica")

    def kill_master(self, key: str) -> ClusterNodeServer:
        """SIGKILL the master of ``key``'s slot (like a power cut); return it."""
        node = self.master_of(key)
        node.kill()
        return node

    def wait_promoted(self, key: str, timeout_s: float = 30.0) -> ClusterNodeServer:
        """Wait until a live master serves ``key``'s slot again and the cluster is ok."""
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(EmbeddedError):
                node = self.master_of(key)
                self._wait_state_ok(deadline)
                return node
            if time.monotonic() > deadline:
                raise EmbeddedError(f"no replica took over the slot of {key!r}")
            time.sleep(0.05)

    def _wait_state_ok(self, deadline: float) -> None:
        while True:
            states = []
            for node in self.nodes:
                if not node.running:
                    continue
                client = node.client()
                try:
                    states.append(client.cluster("info").get("cluster_state"))
                except (redis_exceptions.RedisError, OSError):
                    states.append("down")
                finally:
                    client.close()
            if all(s == "ok" for s in states):
                return
            if time.monotonic() > deadline:
                raise EmbeddedError(f"cluster states after failover: {states}")
            time.sleep(0.05)


def _covers(info: dict[str, object], slot: int) -> bool:
    """Whether a node of ``CLUSTER NODES`` (as redis-py parses it) serves ``slot``."""
    ranges = info.get("slots") or []
    assert isinstance(ranges, list)
    for r in ranges:
        start, end = int(r[0]), int(r[-1])
        if start <= slot <= end:
            return True
    return False
