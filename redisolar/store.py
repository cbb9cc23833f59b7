"""What RediSolar needs to know about the client it was given: a standalone server or a Redis Cluster,
and the plumbing that differs between them.

The one client factory is :meth:`redisolar.config.Config.client`: a ``redis.Redis`` on a standalone
server, a ``redis.cluster.RedisCluster`` when ``REDIS_CLUSTER`` is set. Both are typed as
``redis.Redis`` through the code base (a decision: ``RedisCluster`` offers the same command methods,
from the same ``redis.commands`` mix-ins, so the DAOs are written once). The few places where the two
differ ask this module:

- :func:`is_cluster`; :func:`durability` (what the factory registered for the client);
- :func:`node_clients`: a plain ``redis.Redis`` per primary (one per standalone server), for what must
  run on every shard (``SCAN``, ``FLUSHALL``, ``SCRIPT LOAD``, ``INFO``, module checks);
- :func:`slot_of` / :func:`node_client_for_slot`: the plain connection that serves a slot, for a
  pipeline of commands of one slot (redis-py's cluster pipeline refuses ``EVALSHA``);
- :func:`scan_keys`, :func:`flush_all`.

This module imports nothing of RediSolar (``config`` registers clients here).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

DURABILITY_LOCAL = "local"
DURABILITY_REPLICATED = "replicated"


@dataclass(frozen=True)
class Durability:
    """When a write counts as done. ``replicas`` 0: once its master has it (``local``); 1: once a
    replica acknowledged it too (``replicated``: ``WAIT 1 timeout_ms`` after the write, on the same
    connection)."""

    replicas: int = 0
    timeout_ms: int = 1000

    @classmethod
    def named(cls, mode: str, timeout_ms: int) -> Durability:
        """The durability of the ``DURABILITY`` setting ``mode`` (``local`` or ``replicated``)."""
        if mode not in (DURABILITY_LOCAL, DURABILITY_REPLICATED):
            choices = f"{DURABILITY_LOCAL} or {DURABILITY_REPLICATED}"
            raise ValueError(f"DURABILITY must be {choices}, got {mode!r}")
        return cls(1 if mode == DURABILITY_REPLICATED else 0, timeout_ms)


LOCAL = Durability()
_durability: weakref.WeakKeyDictionary[Any, Durability] = weakref.WeakKeyDictionary()


def register(client: Any, durability: Durability) -> None:
    """Remember ``client``'s durability (the factory does it for every client it builds)."""
    if durability != LOCAL:
        _durability[client] = durability


def durability(client: Any) -> Durability:
    """The durability registered for ``client`` (``local`` for a client the factory did not build)."""
    return _durability.get(client, LOCAL)


def is_cluster(client: Any) -> bool:
    """Whether ``client`` is redis-py's cluster client."""
    return isinstance(client, RedisCluster)


def as_cluster(client: Any) -> RedisCluster:
    """``client`` typed as the cluster client it is (see :func:`is_cluster`)."""
    return cast(RedisCluster, client)


def slot_of(key: str | bytes) -> int:
    """The hash slot of ``key`` (its ``{tag}`` only, when it has one)."""
    return key_slot(key.encode("utf-8") if isinstance(key, str) else key)


def node_client(client: redis.Redis, node: ClusterNode) -> redis.Redis:
    """The cluster client's own pooled, plain connection to ``node`` (no retries of its own)."""
    connection = as_cluster(client).get_redis_connection(node)
    return cast(redis.Redis, connection)


def node_for_slot(client: redis.Redis, slot: int) -> ClusterNode:
    """The primary that serves ``slot`` in the cluster client's slot map (``SlotNotCoveredError``
    when none does)."""
    return as_cluster(client).nodes_manager.get_node_from_slot(slot)


def node_client_for_slot(client: redis.Redis, slot: int) -> redis.Redis:
    """The plain connection that serves ``slot``: ``client`` itself on a standalone server."""
    if not is_cluster(client):
        return client
    return node_client(client, node_for_slot(client, slot))


def node_clients(client: redis.Redis) -> list[redis.Redis]:
    """A plain connection to every primary (``[client]`` on a standalone server)."""
    if not is_cluster(client):
        return [client]
    return [node_client(client, node) for node in as_cluster(client).get_primaries()]


def refresh(client: redis.Redis) -> None:
    """Re-read the cluster's slot map (after MOVED, a failover, a node down); a no-op standalone."""
    if is_cluster(client):
        as_cluster(client).nodes_manager.initialize()


def close(client: redis.Redis) -> None:
    """Close ``client`` and its sockets now. ``RedisCluster.close()`` alone leaves them open when the
    client came from a URL (as :meth:`redisolar.config.Config.client` builds it): its nodes' clients
    are given their pools, so closing them does not disconnect the pools; their sockets were left to
    the garbage collector, which finalizes them in no set order ("unclosed socket" ResourceWarnings
    in the cluster CLI tests, for the connections the start-up migration's pipeline opened)."""
    client.close()
    if is_cluster(client):
        as_cluster(client).disconnect_connection_pools()
    else:
        client.connection_pool.disconnect()


def scan_keys(client: redis.Redis, match: str | None = None, count: int = 1000) -> Iterator[Any]:
    """Every key (matching ``match``) of every primary: ``SCAN`` walks one server only. For tools,
    migrations and tests, never a request path."""
    for node in node_clients(client):
        yield from node.scan_iter(match=match, count=count)


def flush_all(client: redis.Redis) -> None:
    """``FLUSHALL`` on every primary (tests, ``redisolar load --flush``)."""
    for node in node_clients(client):
        node.flushall()
