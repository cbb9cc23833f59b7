"""Lua scripts: read from ``redisolar/dao/lua/*.lua`` once, run by SHA, loaded on demand.

Scripts run with EVALSHA inside plain (non-transactional) pipelines. When a server does not know a
script yet (first use, or after a restart or SCRIPT FLUSH), the commands that failed with NOSCRIPT are
loaded and re-run; every script here is safe to re-run because it did nothing when it failed.

Out of memory (``maxmemory`` reached, ``noeviction``): a write is two round trips, the site's own write
script, then the derived-state scripts (leaderboards, sums, fleet rollups). Redis refuses a plain
script at its first write when it is out of memory, so a site's write is refused whole. The scripts of
:data:`ALLOW_OOM_SCRIPTS` are registered with the Redis 7 shebang ``#!lua flags=allow-oom``: once a site's
write was accepted, its derived updates are never refused for memory (a small, bounded overshoot), so
the derived state never lags the readings. On a server without shebangs (Redis 6.2) they load without
the flag (:attr:`LuaScript.legacy`), remembered per client.

On a Redis Cluster (:func:`redisolar.store.is_cluster`) every call's keys must hash to one slot; the
calls go through :func:`redisolar.dao.routing.run_commands` (one pipeline per node, retried while
slots move, :class:`~redisolar.errors.StoreUnavailable` after that); scripts are loaded on every
primary when one of them answers NOSCRIPT; ``extra``'s commands run in a cluster pipeline after
the scripts.

Durability (:func:`redisolar.store.durability`, ``DURABILITY=replicated``): each round trip ends with
``WAIT 1 <timeout>`` on its connection (per node on a cluster); a call whose round trip was not
acknowledged by a replica gets :class:`~redisolar.errors.NotReplicated` in place of its result
(raised by :func:`run_scripts`). With the default ``local`` nothing is added.
"""

from __future__ import annotations

import hashlib
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, TypeVar

import redis
from redis.client import Pipeline
from redis.exceptions import NoScriptError, ResponseError

from redisolar import store
from redisolar.dao import routing
from redisolar.errors import NotReplicated
from redisolar.store import Durability

log = logging.getLogger(__name__)

T = TypeVar("T")

MEMBERS_PER_CALL = 1_000
"""The most members (sites) one call of a variadic derived-state script carries: a script passes its
arguments to a command with ``unpack``, which stops near 8,000 values (Lua's C stack,
``LUAI_MAXCSTACK``), so a batch of many sites is split into calls of at most this many, each
absolute and single-slot as before."""


def chunks(items: Sequence[T], size: int = MEMBERS_PER_CALL) -> list[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]


DERIVED_SCRIPTS: frozenset[str] = frozenset(
    {"lb_set", "zset_set", "zset_sum", "zset_add", "fleet_hour_set", "events_add", "history_set"}
    | {"alert_open", "alert_resolve", "alert_index"}  # alert state, derived from the readings too
)
"""Scripts that update state derived from readings already written: they run even when Redis is out
of memory (``allow-oom``). Add a script here when it must follow a site's accepted write (it must
declare every key it touches in KEYS). Never add a script that writes readings or sites: those must be
refused whole when memory is full. ``history_set`` may allocate a new rollup block (~100 KB) for the
last batch accepted before memory ran out: later writes are refused at their series script, so the
overshoot stays that batch's."""

BOOKKEEPING_SCRIPTS: frozenset[str] = frozenset({"auth_check"})
"""Per-request bookkeeping (rate-limit buckets, a key's last use): a few small, expiring values. Allowed
when out of memory too, or every request, reads included, would be refused while storage is full."""

ALLOW_OOM_SCRIPTS = DERIVED_SCRIPTS | BOOKKEEPING_SCRIPTS
"""The scripts registered with ``#!lua flags=allow-oom``."""

ALLOW_OOM_SHEBANG = "#!lua flags=allow-oom\n"


@dataclass(frozen=True)
class LuaScript:
    """One script: its name, source and SHA1."""

    name: str
    source: str
    sha: str
    legacy: LuaScript | None = None
    """The same script without its shebang, for servers older than Redis 7 (None: no shebang)."""


@cache
def script(name: str) -> LuaScript:
    """The script ``redisolar/dao/lua/<name>.lua`` (flagged if in :data:`ALLOW_OOM_SCRIPTS`), each
    line ``--@include lib/<lib>.lua`` replaced by that library's text (:func:`with_includes`)."""
    source = with_includes(resources.files("redisolar.dao").joinpath("lua", f"{name}.lua").read_text("utf-8"))
    if name in ALLOW_OOM_SCRIPTS:
        return lua_script(name, ALLOW_OOM_SHEBANG + source, legacy=lua_script(name, source))
    return lua_script(name, source)


INCLUDE = "--@include "


def with_includes(source: str) -> str:
    """``source`` with each line ``--@include <path>`` (a path under ``redisolar/dao/lua``) replaced by
    that file's text: Redis scripts cannot load modules, so shared Lua (``lib/localday.lua``) is pasted
    in; one level (libraries include nothing), and the SHA covers the pasted text."""
    lua = resources.files("redisolar.dao").joinpath("lua")
    return "".join(
        lua.joinpath(*line[len(INCLUDE) :].strip().split("/")).read_text("utf-8")
        if line.startswith(INCLUDE)
        else line
        for line in source.splitlines(keepends=True)
    )


def lua_script(name: str, source: str, legacy: LuaScript | None = None) -> LuaScript:
    """A :class:`LuaScript` whose SHA is that of ``source``, the text loaded into Redis."""
    return LuaScript(name, source, hashlib.sha1(source.encode("utf-8")).hexdigest(), legacy)


_without_shebangs: weakref.WeakSet[redis.Redis] = weakref.WeakSet()
"""Clients whose server refused a shebang (older than Redis 7): they run the legacy variants."""


def runnable(client: redis.Redis, lua: LuaScript) -> LuaScript:
    """The form of ``lua`` that ``client``'s server runs (its shebang dropped for Redis < 7, once
    :func:`load_script` found out). Callers that EVALSHA by themselves use this SHA and
    :func:`load_script`."""
    if lua.legacy is not None and client in _without_shebangs:
        return lua.legacy
    return lua


def load_script(client: redis.Redis, lua: LuaScript) -> None:
    """SCRIPT LOAD ``lua`` (on every primary of a cluster); if the server refuses its shebang, load the
    legacy form and remember."""
    try:
        _load_everywhere(client, runnable(client, lua).source)
    except ResponseError:
        if lua.legacy is None or client in _without_shebangs:
            raise
        _load_everywhere(client, lua.legacy.source)  # raises if the script itself is wrong
        log.warning("Redis refused the script flags of %s (older than Redis 7?): running without", lua.name)
        _without_shebangs.add(client)


def _load_everywhere(client: redis.Redis, source: str) -> None:
    for node in store.node_clients(client):
        node.script_load(source)


@dataclass(frozen=True)
class ScriptCall:
    """A script to run with its keys and arguments."""

    script: LuaScript
    keys: tuple[str, ...]
    args: tuple[Any, ...]


Extra = Callable[[Pipeline], object]
"""Queues plain commands after the scripts, in the same round trip (their replies are dropped)."""


def run_scripts(client: redis.Redis, calls: list[ScriptCall], extra: Extra | None = None) -> list[Any]:
    """Run ``calls`` (and what ``extra`` queues) in one pipelined round trip (two when scripts must
    be loaded first; ``extra``'s commands run once).

    Returns one result per call, in order; an error is raised (the first one), after everything ran.
    """
    results = run_scripts_collect(client, calls, extra)
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


def run_scripts_collect(
    client: redis.Redis, calls: list[ScriptCall], extra: Extra | None = None
) -> list[Any]:
    """As :func:`run_scripts`, but a call's error is returned in its place instead of raised (the
    caller can act on the calls that succeeded, then raise); ``extra``'s errors are still raised."""
    if not calls and extra is None:
        return []
    cluster = store.is_cluster(client)
    durability = store.durability(client)
    execute = _on_cluster if cluster else _execute
    results = execute(client, calls, None if cluster else extra, durability)
    missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
    if missing:
        for lua in {calls[i].script for i in missing}:
            load_script(client, lua)
        for i, result in zip(
            missing, execute(client, [calls[i] for i in missing], None, durability), strict=True
        ):
            results[i] = result
    if cluster and extra is not None:
        _cluster_extra(client, extra)
    return results


def _execute(
    client: redis.Redis, calls: list[ScriptCall], extra: Extra | None, durability: Durability
) -> list[Any]:
    if extra is None and not durability.replicas:
        results = _execute_lean(client, calls)
        if results is not None:
            return results
    pipe = client.pipeline(transaction=False)
    for call in calls:
        pipe.evalsha(runnable(client, call.script).sha, len(call.keys), *call.keys, *call.args)
    if extra is not None:
        extra(pipe)
    if durability.replicas:
        pipe.execute_command("WAIT", durability.replicas, durability.timeout_ms)
        _read_wait_patiently(pipe, durability)
    results = list(pipe.execute(raise_on_error=False))
    for result in results[len(calls) :]:
        if isinstance(result, Exception):
            raise result
    if durability.replicas and int(results[-1]) < durability.replicas:
        short = NotReplicated(int(results[-1]), durability.replicas)
        return [r if isinstance(r, Exception) else short for r in results[: len(calls)]]
    return results[: len(calls)]


def _execute_lean(client: redis.Redis, calls: list[ScriptCall]) -> list[Any] | None:
    """The calls on one pooled connection, packed and sent at once, their replies read in order (an
    error reply in its call's place): a redis-py pipeline's command stack, callbacks and bookkeeping
    cost more than the round trip's own work for the few scripts of a request. None when the
    connection failed: the caller runs the calls again through a pipeline, which retries as the client
    is configured to (a script is safe to re-run: derived state is written absolutely, and a
    pipeline retried by redis-py re-runs its scripts the same way). The round trip is observed as a
    pipeline in ``/metrics`` (:func:`redisolar.metrics.instrument_redis`)."""
    pool = client.connection_pool
    commands = [
        ("EVALSHA", runnable(client, call.script).sha, len(call.keys), *call.keys, *call.args)
        for call in calls
    ]
    observe = getattr(client, ROUND_TRIP_OBSERVER, None)
    start = time.perf_counter()
    try:
        connection = pool.get_connection()
    except (redis.ConnectionError, redis.TimeoutError):
        return None
    try:
        connection.send_packed_command(connection.pack_commands(commands))
        results = [_reply(connection) for _ in commands]
    except (redis.ConnectionError, redis.TimeoutError):
        connection.disconnect()
        return None
    finally:
        pool.release(connection)
    if observe is not None:
        observe("PIPELINE", time.perf_counter() - start)
    return results


ROUND_TRIP_OBSERVER = "_redisolar_round_trip"
"""The attribute of a client under which :func:`redisolar.metrics.instrument_redis` leaves a function
``(command, seconds)`` for round trips made outside redis-py's commands and pipelines."""


def _reply(connection: Any) -> Any:
    """The next reply on ``connection``; an error reply as its exception, not raised."""
    try:
        return connection.read_response()
    except ResponseError as exc:
        return exc


def _read_wait_patiently(pipe: Pipeline, durability: Durability) -> None:
    """Have ``pipe`` read ``WAIT``'s reply for the socket timeout plus ``DURABILITY_TIMEOUT_MS``
    (:func:`redisolar.dao.routing.wait_reply_timeout`, as on a cluster): with the socket timeout
    alone, ``REDIS_SOCKET_TIMEOUT`` <= ``DURABILITY_TIMEOUT_MS`` made every unreplicated write a read
    timeout, retried whole by redis-py (scripts and WAIT again) and then a generic 503, never
    :class:`~redisolar.errors.NotReplicated`. The other replies keep the socket timeout. Set on this
    pipeline object alone (redis-py reads each reply through ``parse_response``), so the metrics'
    wrapper of ``execute`` and the client's retries stay as they are."""
    parse = pipe.parse_response

    def parse_response(connection: Any, command_name: Any, **options: Any) -> Any:
        if command_name != "WAIT":
            return parse(connection, command_name, **options)
        return connection.read_response(timeout=routing.wait_reply_timeout(connection, durability))

    pipe.parse_response = parse_response  # type: ignore[method-assign]


def _on_cluster(
    client: redis.Redis, calls: list[ScriptCall], extra: Extra | None, durability: Durability
) -> list[Any]:
    """The calls on a cluster (``extra`` runs separately, :func:`_cluster_extra`)."""
    routed = []
    for call in calls:
        command = ("EVALSHA", runnable(client, call.script).sha, len(call.keys), *call.keys, *call.args)
        routed.append(routing.Routed(call.keys, command, f"script {call.script.name}"))
    return routing.run_commands(client, routed, durability)


def _cluster_extra(client: redis.Redis, extra: Extra) -> None:
    """``extra``'s commands in redis-py's cluster pipeline (routed by key, retried by redis-py)."""
    pipe = client.pipeline(transaction=False)
    extra(pipe)
    pipe.execute()
