"""A private Redis Cluster: N masters (and R replicas each) of :class:`RedisServer`, on free ports.

:class:`LocalCluster` builds the cluster the way ``redis-cli --cluster create`` does, with commands
only (no ``redis-cli`` needed, so it works for Debian's ``redis-server`` 7.0 and the Redis Stack
server 7.4 with its modules alike):

1. start every node with ``--cluster-enabled yes`` (its ``nodes.conf`` in its own data directory);
2. give each master a distinct config epoch (``CLUSTER SET-CONFIG-EPOCH``) and an even share of the
   16384 slots (``CLUSTER ADDSLOTSRANGE``);
3. ``CLUSTER MEET`` every node with the first one; wait until every node knows every other;
4. ``CLUSTER REPLICATE`` each replica to its master; wait until its replication link is up;
5. wait until every node reports ``cluster_state:ok`` and every node's ``CLUSTER SLOTS`` agrees.

Decisions:

- ``cluster-node-timeout`` defaults to 1000 ms: a killed master is marked failed and its replica
  promoted within about two seconds, so a failover test is short. (Production clusters use 15 s.)
- ``cluster-replica-validity-factor 0``: a replica always tries to fail over, however long ago it
  last heard from its master; a test's replica is never "too stale" to be promoted.
- ``repl-diskless-sync-delay 0``: a replica's first sync starts at once (the default waits 5 s for
  more replicas to share the transfer).
- No persistence by default (as :class:`RedisServer`): a killed node restarted with :meth:`start_node`
  comes back empty and rejoins through its ``nodes.conf`` (kept in its data directory), as a replica
  of the replica that took over.
"""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.retry import Retry

from redisolar.embedded.binaries import EmbeddedRedisError, ServerSpec
from redisolar.embedded.server import RedisServer

logger = logging.getLogger(__name__)

SLOTS = 16384
"""Hash slots of a Redis Cluster."""

NODES_FILE = "nodes.conf"
"""Name of each node's cluster configuration file, inside its data directory."""

_POLL_INTERVAL = 0.05
_PORT_ATTEMPTS = 3
_PORT_LOW = 20000
_PORT_HIGH = 55535
# the highest port a cluster node may use: its bus is on port + 10000


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """The inclusive slot range of each of ``masters`` masters, as even as possible."""
    if masters < 1:
        raise ValueError("a cluster needs at least one master")
    bounds = [SLOTS * i // masters for i in range(masters + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(masters)]


class LocalCluster:
    """A Redis Cluster of private ``redis-server`` processes.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`::

        with LocalCluster(find_plain_server(), masters=3, replicas_per_master=1) as cluster:
            client = cluster.client()          # a redis.cluster.RedisCluster, decode_responses=True
            client.set("greeting", "hello")
            cluster.kill(cluster.master_for_key("greeting"))   # SIGKILL: its replica takes over
            cluster.wait_ok()

    :attr:`nodes` lists masters first (in slot order), then replicas (replica ``j`` of master ``i``
    at ``masters + i * replicas_per_master + j``); which node is a master *now* is
    :meth:`primaries` (a failover changes it).
    """

    def __init__(
        self,
        spec: ServerSpec,
        *,
        masters: int = 3,
        replicas_per_master: int = 0,
        data_dir: Path | None = None,
        node_timeout_ms: int = 1000,
        persistence: bool = False,
        extra_args: Sequence[str] = (),
    ) -> None:
        """Describe a cluster; nothing is started until :meth:`start`.

        Args:
            spec: which binary and modules every node runs.
            masters: how many masters share the slots.
            replicas_per_master: replicas of each master (0 or more).
            data_dir: a directory holding one ``node-<i>`` directory per node; ``None``: each node
                gets a temporary directory, removed when it stops.
            node_timeout_ms: ``cluster-node-timeout``: how long a silent node takes to be failed.
            persistence: as :class:`RedisServer`'s (AOF + RDB in each node's directory).
            extra_args: more ``redis-server`` arguments for every node.
        """
        if replicas_per_master < 0:
            raise ValueError("replicas_per_master must not be negative")
        self._ranges = slot_ranges(masters)
        self._masters = masters
        self._replicas = replicas_per_master
        args = [
            "--cluster-enabled", "yes",
            "--cluster-config-file", NODES_FILE,
            "--cluster-node-timeout", str(node_timeout_ms),
            "--cluster-replica-validity-factor", "0",
            "--repl-diskless-sync-delay", "0",
            *extra_args,
        ]  # fmt: skip
        self._spec = spec
        self._args = tuple(args)
        self._data_dir = data_dir
        self._persistence = persistence
        self._nodes = [self._node(i) for i in range(masters * (1 + replicas_per_master))]
        self._formed = False

    def _node(self, index: int) -> RedisServer:
        return RedisServer(
            self._spec,
            port=_cluster_port(),
            data_dir=self._data_dir / f"node-{index}" if self._data_dir is not None else None,
            persistence=self._persistence,
            extra_args=self._args,
        )

    # -- properties ---------------------------------------------------------------------

    @property
    def nodes(self) -> list[RedisServer]:
        """Every node: the first masters, then their replicas (see the class docstring)."""
        return list(self._nodes)

    @property
    def url(self) -> str:
        """A seed node's URL (the first node still running), e.g. ``redis://127.0.0.1:51234``."""
        return self._live_node().url

    @property
    def spec(self) -> ServerSpec:
        """The binary and modules every node runs."""
        return self._spec

    @property
    def host(self) -> str:
        """A seed node's address (as :attr:`url`)."""
        return self._live_node().host

    @property
    def port(self) -> int:
        """A seed node's port (as :attr:`url`)."""
        return self._live_node().port

    @property
    def urls(self) -> list[str]:
        """Every node's URL."""
        return [node.url for node in self._nodes]

    @property
    def seeds(self) -> str:
        """Every node as ``host:port,host:port,...`` (the ``REDIS_CLUSTER_NODES`` setting)."""
        return ",".join(f"{node.host}:{node.port}" for node in self._nodes)

    def __repr__(self) -> str:
        return f"<LocalCluster {self._masters}x{1 + self._replicas} {self.urls}>"

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> Self:
        """Start every node, form the cluster and wait until it serves every slot; a no-op if running.

        After :meth:`stop`, nodes that kept their ``nodes.conf`` (a given ``data_dir``) rejoin the
        cluster they formed before; nodes in temporary directories form a new one.

        Raises:
            EmbeddedRedisError: a node did not start, or the cluster did not become ready in time
                (every node is stopped again).
        """
        if self.is_running():
            return self
        deadline = time.monotonic() + timeout
        try:
            formed = self._formed_before()
            for index, node in enumerate(self._nodes):
                if not node.is_running():
                    self._start_new_node(index)
            if formed:
                self.wait_ok(max(0.0, deadline - time.monotonic()))
            else:
                self._form(deadline)
                self._formed = True
        except BaseException:
            self.stop()
            raise
        logger.info("cluster of %d masters, %d replicas each ready: %s", self._masters, self._replicas, self)
        return self

    def is_running(self) -> bool:
        """Whether every node is running."""
        return all(node.is_running() for node in self._nodes)

    def _formed_before(self) -> bool:
        """Whether this cluster was formed by an earlier :meth:`start` and kept its ``nodes.conf``."""
        return self._formed and self._data_dir is not None

    def _start_new_node(self, index: int) -> None:
        """Start node ``index``; if its port was taken meanwhile, try again on another one."""
        for attempt in range(_PORT_ATTEMPTS):
            try:
                self._nodes[index].start()
                return
            except EmbeddedRedisError as exc:
                if "Address already in use" not in str(exc) or attempt == _PORT_ATTEMPTS - 1:
                    raise
                self._nodes[index] = self._node(index)

    def stop(self) -> None:
        """Stop every node (a no-op for those not running)."""
        for node in self._nodes:
            node.stop()

    def kill(self, node: RedisServer) -> None:
        """SIGKILL ``node`` (as a crash would): no shutdown, no save."""
        node.kill()

    def start_node(self, node: RedisServer, timeout: float = 20.0) -> None:
        """Start a killed or stopped ``node`` again, on the same port: it rejoins the cluster from its
        ``nodes.conf`` (a former master as a replica of whoever took its slots)."""
        node.start(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- clients and topology -----------------------------------------------------------

    def client(self, **kwargs: Any) -> RedisCluster:
        """A new :class:`RedisCluster` seeded with every running node (``decode_responses=True``
        unless ``kwargs`` say otherwise; ``kwargs`` go to its constructor)."""
        options: dict[str, Any] = {"decode_responses": True, **kwargs}
        seeds = [ClusterNode(node.host, node.port) for node in self._nodes if node.is_running()]
        return RedisCluster(startup_nodes=seeds, **options)

    def primaries(self) -> list[RedisServer]:
        """The nodes that are masters now (as a running node sees it), in slot order."""
        view = self._slots_view(self._live_node())
        by_port = {node.port: node for node in self._nodes}
        return [by_port[master] for _, _, master, _ in view if master in by_port]

    def master_for_key(self, key: str) -> RedisServer:
        """The node that serves ``key``'s slot now."""
        return self.master_for_slot(key_slot(key.encode("utf-8")))

    def master_for_slot(self, slot: int) -> RedisServer:
        """The node that serves ``slot`` now."""
        by_port = {node.port: node for node in self._nodes}
        for start, end, master, _ in self._slots_view(self._live_node()):
            if start <= slot <= end and master in by_port:
                return by_port[master]
        raise EmbeddedRedisError(f"no running node serves slot {slot}")

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every running node reports ``cluster_state:ok``, they agree on who serves which
        slots, and every slot's master is running (e.g. after :meth:`kill`, once a replica took over)."""
        deadline = time.monotonic() + timeout
        running = [node for node in self._nodes if node.is_running()]
        self._wait(deadline, "an agreed slot map with cluster_state:ok", lambda: self._agreed(running))

    # -- forming the cluster ------------------------------------------------------------

    def _form(self, deadline: float) -> None:
        masters = self._nodes[: self._masters]
        with _controls(self._nodes) as controls:
            for epoch, (control, (start, end)) in enumerate(zip(controls, self._ranges, strict=False), 1):
                control.execute_command("CLUSTER SET-CONFIG-EPOCH", epoch)
                control.execute_command("CLUSTER ADDSLOTSRANGE", start, end)
            seed = self._nodes[0]
            for control in controls[1:]:
                control.execute_command("CLUSTER MEET", seed.host, seed.port)
            self._wait(deadline, "every node to know every other", lambda: _all_known(controls))
            ids = [control.execute_command("CLUSTER MYID") for control in controls[: self._masters]]
            for index, control in enumerate(controls[self._masters :]):
                control.execute_command("CLUSTER REPLICATE", ids[index // self._replicas])
            replicas = controls[self._masters :]
            self._wait(deadline, "every replica to sync", lambda: all(map(_link_up, replicas)))
        self._wait(deadline, "cluster_state:ok everywhere", lambda: self._agreed(self._nodes))
        logger.debug("cluster masters: %s", [node.url for node in masters])

    def _agreed(self, nodes: list[RedisServer]) -> bool:
        views = []
        for node in nodes:
            with _control(node) as control:
                info = control.cluster("INFO")
                if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != SLOTS:
                    return False
            views.append(self._slots_view(node))
        running = {node.port for node in self._nodes if node.is_running()}
        served = all(master in running for _, _, master, _ in views[0]) if views else False
        return served and all(view == views[0] for view in views)

    def _slots_view(self, node: RedisServer) -> list[tuple[int, int, int, tuple[int, ...]]]:
        """``node``'s CLUSTER SLOTS as (start, end, master port, replica ports), sorted."""
        with _control(node) as control:
            reply = control.execute_command("CLUSTER SLOTS")
        rows = []
        for entry in reply:
            start, end, master, *replicas = entry
            rows.append((int(start), int(end), int(master[1]), tuple(sorted(int(r[1]) for r in replicas))))
        return sorted(rows)

    def _live_node(self) -> RedisServer:
        for node in self._nodes:
            if node.is_running():
                return node
        raise EmbeddedRedisError("no node of the cluster is running")

    @staticmethod
    def _wait(deadline: float, what: str, done: Any) -> None:
        while True:
            try:
                if done():
                    return
            except (redis.RedisError, OSError) as exc:
                logger.debug("waiting for %s: %s", what, exc)
            if time.monotonic() >= deadline:
                raise EmbeddedRedisError(f"the local cluster did not reach {what} in time")
            time.sleep(_POLL_INTERVAL)


def _cluster_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` whose cluster bus port (+10000) is free too: Redis 7.0 derives the bus
    port that way and refuses ports above 55535."""
    rng = random.Random()
    while True:
        port = rng.randint(_PORT_LOW, _PORT_HIGH)
        if _bindable(host, port) and _bindable(host, port + 10000):
            return port


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _control(node: RedisServer) -> redis.Redis:
    """A short-lived plain client on ``node``: short timeouts, no retries, RESP2, text."""
    return redis.Redis(
        host=node.host,
        port=node.port,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        retry=Retry(NoBackoff(), 0),
        protocol=2,
        decode_responses=True,
    )


@contextmanager
def _controls(nodes: list[RedisServer]) -> Iterator[list[redis.Redis]]:
    """Control clients of several nodes, closed together."""
    clients = [_control(node) for node in nodes]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


def _all_known(controls: list[redis.Redis]) -> bool:
    for control in controls:
        info = control.cluster("INFO")
        if int(info.get("cluster_known_nodes", 0)) != len(controls):
            return False
    return True


def _link_up(control: redis.Redis) -> bool:
    return control.info("replication").get("master_link_status") == "up"
