"""Commands of known slots, run on a Redis Cluster in one round trip per node, retried while slots move.

redis-py's cluster pipeline refuses ``EVALSHA`` (and ``SCRIPT EXISTS``), so the scripts of
:mod:`redisolar.dao.scripts` and the per-request key check (:mod:`redisolar.dao.keys_dao`) come here:
:func:`run_commands` groups the commands by the primary that serves their slot (from the cluster
client's slot map), packs each group onto one pooled connection of that node, sends every group
before reading any reply (so a batch over three masters costs about one round trip, not three), and
returns the replies in the commands' order, an error reply in its command's place.

While slots move (a failover, a resharding) a command can meet ``MOVED``, ``ASK``, ``TRYAGAIN``,
``CLUSTERDOWN``, a slot no node serves, or a node that does not answer. Those commands (only those)
are sent again on a refreshed slot map (``ASK``: to the node named, after ``ASKING``), up to the
client's retries (``REDIS_RETRIES``) with a short exponential backoff (50, 100, 200 ms...), then
:class:`~redisolar.errors.StoreUnavailable` (HTTP 503 with ``Retry-After``). Re-sending is safe for
our commands: a refused command did nothing, and every script writes absolute or upserted state.

Durability: with :class:`~redisolar.store.Durability` ``replicas`` > 0, each node's group ends with
``WAIT replicas timeout`` on the same connection; a node whose replicas did not all acknowledge has
its commands' replies replaced by :class:`~redisolar.errors.NotReplicated` (the writes may be
stored on that master, not known to be on a replica).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.cluster import ClusterNode
from redis.connection import SENTINEL
from redis.exceptions import (
    AskError,
    ClusterDownError,
    RedisClusterException,
    TryAgainError,
)

from redisolar import store
from redisolar.errors import NotReplicated, StoreUnavailable
from redisolar.redis_faults import is_auth_failure
from redisolar.store import LOCAL, Durability

log = logging.getLogger(__name__)

_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 1.0

MOVING_ERRORS = (AskError, TryAgainError, ClusterDownError)
"""Error replies that mean "this slot is moving or its master is failing over" (MovedError is an
AskError): the command did nothing; send it again on a fresh slot map."""


class CrossSlotCall(ValueError):
    """A command's keys hash to more than one slot: it cannot run on a cluster (a bug in the caller;
    every script must touch one slot)."""


@dataclass(frozen=True)
class Routed:
    """A command and the keys that decide where it runs (all in one slot; none: any primary)."""

    keys: Sequence[str]
    command: tuple[Any, ...]
    name: str = ""
    """What the command is, for the error of a cross-slot call (e.g. the script's name)."""


def slot_of_keys(keys: Sequence[str], what: object = "command") -> int | None:
    """The one slot of ``keys`` (None for no keys); :class:`CrossSlotCall` if they span two."""
    slots = {store.slot_of(key) for key in keys}
    if len(slots) > 1:
        raise CrossSlotCall(f"{what} touches keys in {len(slots)} hash slots: {list(keys)}")
    return slots.pop() if slots else None


def run_commands(client: redis.Redis, routed: Sequence[Routed], durability: Durability = LOCAL) -> list[Any]:
    """Run ``routed`` on the cluster ``client``; their replies in order (an error reply as its
    exception). Raises :class:`StoreUnavailable` when slots stay unreachable after the retries."""
    slots = [slot_of_keys(item.keys, item.name or item.command[0]) for item in routed]
    replies: list[Any] = [None] * len(routed)
    pending = list(range(len(routed)))
    asks: dict[int, str] = {}
    attempts = 1 + _retries(client)
    for attempt in range(attempts):
        failed, last = _round(client, routed, slots, pending, replies, asks, durability)
        if not failed:
            return replies
        if attempt + 1 < attempts:
            log.info("%d commands met a moving cluster (%s); retrying on a fresh slot map", len(failed), last)
            time.sleep(min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))
            _refresh(client)
        pending = failed
    raise StoreUnavailable("The Redis Cluster is moving slots or failing over; try again shortly") from last


def _retries(client: redis.Redis) -> int:
    retry = getattr(client, "retry", None)
    return int(retry.get_retries()) if retry is not None else 3


def _refresh(client: redis.Redis) -> None:
    try:
        store.refresh(client)
    except (redis.RedisError, RedisClusterException) as exc:  # no node answers yet: retry later
        log.info("could not refresh the cluster's slot map: %s", exc)


def _round(
    client: redis.Redis,
    routed: Sequence[Routed],
    slots: list[int | None],
    pending: list[int],
    replies: list[Any],
    asks: dict[int, str],
    durability: Durability,
) -> tuple[list[int], BaseException | None]:
    """One attempt at ``pending``: fills ``replies``; returns the indexes to retry and why."""
    failed: list[int] = []
    last: BaseException | None = None
    groups: dict[str, list[int]] = defaultdict(list)
    nodes: dict[str, ClusterNode] = {}
    for index in pending:
        try:
            node = _target(client, slots[index], asks.get(index))
        except (redis.RedisError, RedisClusterException) as exc:  # SlotNotCoveredError, unknown node
            failed.append(index)
            last = exc
            continue
        nodes[node.name] = node
        groups[node.name].append(index)
    sent = []
    for name, indexes in groups.items():
        commands = [_asking(routed[i].command, i in asks) for i in indexes]
        sent.append((indexes, _Group(store.node_client(client, nodes[name]), commands, durability)))
    for _, group in sent:
        group.send()
    asks.clear()
    for indexes, group in sent:
        outcome = group.read()
        if isinstance(outcome, BaseException):
            failed.extend(indexes)
            last = outcome
            continue
        for index, reply in zip(indexes, outcome, strict=True):
            if isinstance(reply, MOVING_ERRORS):
                failed.append(index)
                last = reply
                if type(reply) is AskError:
                    asks[index] = f"{reply.host}:{reply.port}"
            else:
                replies[index] = reply
    return sorted(failed), last


def _target(client: redis.Redis, slot: int | None, ask: str | None) -> ClusterNode:
    cluster = store.as_cluster(client)
    if ask is not None:
        node = cluster.get_node(node_name=ask)
        if node is None:
            raise RedisClusterException(f"ASK names an unknown node {ask}")
        return node
    if slot is None:
        return cluster.get_default_node()
    return store.node_for_slot(client, slot)


def _asking(command: tuple[Any, ...], asking: bool) -> list[tuple[Any, ...]]:
    return [("ASKING",), command] if asking else [command]


class _Group:
    """The commands of one node on one pooled connection: :meth:`send` all, then :meth:`read`."""

    def __init__(
        self, node: redis.Redis, commands: list[list[tuple[Any, ...]]], durability: Durability
    ) -> None:
        self.node = node
        self.commands = commands
        self.durability = durability
        self.connection: Any = None
        self.error: BaseException | None = None

    def send(self) -> None:
        flat = [command for parts in self.commands for command in parts]
        if self.durability.replicas:
            flat.append(("WAIT", self.durability.replicas, self.durability.timeout_ms))
        try:
            self.connection = self.node.connection_pool.get_connection()
            self.connection.send_packed_command(self.connection.pack_commands(flat))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._fail(exc)

    def read(self) -> list[Any] | BaseException:
        if self.error is not None:
            return self.error
        try:
            replies = [[_reply(self.connection) for _ in parts][-1] for parts in self.commands]
            if self.durability.replicas:
                wait = wait_reply_timeout(self.connection, self.durability)
                replies = self._waited(replies, _reply(self.connection, wait))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._fail(exc)
            return exc
        except BaseException:
            self._fail(None)
            raise
        self.node.connection_pool.release(self.connection)
        return replies

    def _waited(self, replies: list[Any], acknowledged: Any) -> list[Any]:
        if isinstance(acknowledged, Exception):
            raise acknowledged
        wanted = self.durability.replicas
        if int(acknowledged) >= wanted:
            return replies
        short = NotReplicated(int(acknowledged), wanted)
        return [r if isinstance(r, Exception) else short for r in replies]

    def _fail(self, exc: BaseException | None) -> None:
        """Drop the connection (its replies are out of step); remember ``exc`` to report it."""
        self.error = exc
        if self.connection is not None:
            self.connection.disconnect()
            self.node.connection_pool.release(self.connection)
            self.connection = None
        if exc is not None and is_auth_failure(exc):
            raise exc  # wrong credentials: not a moving slot, retrying will not help


def wait_reply_timeout(connection: Any, durability: Durability) -> float | None:
    """How long to read ``WAIT``'s reply on ``connection``: its socket timeout plus
    ``DURABILITY_TIMEOUT_MS``, since the server holds the reply that long when no replica
    acknowledges (None: the connection has no timeout). With the socket timeout alone, a
    ``REDIS_SOCKET_TIMEOUT`` no longer than the WAIT's timeout would turn every unreplicated write
    into a read timeout (retried as if the node were dead, a generic 503 after the retries) instead
    of :class:`~redisolar.errors.NotReplicated` (found by the failover test: 1 s and 1 s, a master
    promoted without a replica yet). Used on a cluster (:class:`_Group`) and on a standalone server
    (:mod:`redisolar.dao.scripts`)."""
    socket_timeout = getattr(connection, "socket_timeout", None)
    if socket_timeout is None:
        return None
    return float(socket_timeout) + durability.timeout_ms / 1000


def _reply(connection: Any, timeout: float | object | None = SENTINEL) -> Any:
    """The next reply on ``connection`` (waiting up to ``timeout`` seconds; by default its socket
    timeout); an error reply returned as its exception, not raised."""
    try:
        return connection.read_response(timeout=timeout)
    except redis.ResponseError as exc:
        return exc
