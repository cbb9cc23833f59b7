"""Lua scripts: read from ``redisolar/dao/lua/*.lua`` once, run by SHA, loaded on demand.

Scripts run with EVALSHA inside plain (non-transactional) pipelines. When a server does not know a
script yet (first use, or after a restart or SCRIPT FLUSH), the commands that failed with NOSCRIPT are
loaded and re-run; every script here is safe to re-run because it did nothing when it failed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import redis
from redis.client import Pipeline
from redis.exceptions import NoScriptError


@dataclass(frozen=True)
class LuaScript:
    """One script: its name, source and SHA1."""

    name: str
    source: str
    sha: str


@cache
def script(name: str) -> LuaScript:
    """The script ``redisolar/dao/lua/<name>.lua``."""
    source = resources.files("redisolar.dao").joinpath("lua", f"{name}.lua").read_text("utf-8")
    return LuaScript(name, source, hashlib.sha1(source.encode("utf-8")).hexdigest())


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
    results = _execute(client, calls, extra)
    missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
    if missing:
        for lua in {calls[i].script for i in missing}:
            client.script_load(lua.source)
        for i, result in zip(missing, _execute(client, [calls[i] for i in missing]), strict=True):
            results[i] = result
    return results


def _execute(client: redis.Redis, calls: list[ScriptCall], extra: Extra | None = None) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for call in calls:
        pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
    if extra is not None:
        extra(pipe)
    results = list(pipe.execute(raise_on_error=False))
    for result in results[len(calls) :]:
        if isinstance(result, Exception):
            raise result
    return results[: len(calls)]
