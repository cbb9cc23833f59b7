"""API keys in Redis, and the one call per request that checks a key and its rate limit.

Each key lives under its own hash tag ``{apikey:ID}`` (its record, which also holds its rate-limit
budgets, and its sites), so the per-request check is one single-slot script (``auth_check.lua``);
the registry of key ids (``apikeys``) is only written when keys are created or revoked. Keys are not
cached in the process: a revoked key is refused by the next request in every worker. Whether any key
exists (``AUTH_MODE=auto``) is remembered once seen, :class:`~redisolar.auth.presence.KeyPresence`
(re-read every 5 s, and kept when the registry cannot be read).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import redis
from redis.exceptions import NoScriptError

from redisolar import store
from redisolar.auth.limits import RateDecision, RatePolicy
from redisolar.auth.presence import KeyPresence
from redisolar.dao import routing
from redisolar.dao.key_manager import KeyManager
from redisolar.dao.scripts import load_script, runnable, script
from redisolar.errors import StoreUnavailable
from redisolar.models.api_key import ApiKey, is_key_id, key_id_of, new_secret, secret_hash
from redisolar.timeutil import from_ms, to_ms, utcnow


@dataclass(frozen=True)
class KeyCheck:
    """The answer for a presented key: ``verdict`` ok, unknown or expired; the key's scope and
    whether it may write the request's site (when ok); the rate decision (None: no limit)."""

    verdict: str
    scope: str = ""
    site_ok: bool = False
    rate: RateDecision | None = None
    site_exists: bool | None = None
    """Whether the prefetched site exists (None: not asked)."""


class ApiKeyDao:
    """Creates, lists and revokes API keys; checks presented keys and rate budgets."""

    def __init__(self, client: redis.Redis, keys: KeyManager, presence: KeyPresence | None = None) -> None:
        self.client = client
        self.keys = keys
        self.presence = presence or KeyPresence()
        """Whether any key exists, as this process last knew it."""
        self._script = script("auth_check")

    # -- management --------------------------------------------------------------------------------
    def create(self, key: ApiKey, expires_days: float | None = None) -> tuple[ApiKey, str]:
        """Store a new key like ``key`` (its id and times are set here). Returns it and its secret,
        which is not stored and cannot be shown again."""
        key_id, secret = new_secret()
        moment = utcnow()
        now = moment.replace(microsecond=0)
        expires = now + timedelta(days=expires_days) if expires_days else None
        stored = ApiKey(
            key_id, key.scope, key.name, tuple(sorted(set(key.sites))), key.all_sites, now, expires
        )
        record: dict[Any, Any] = {
            "id": key_id,
            "name": stored.name,
            "scope": stored.scope,
            "all_sites": int(stored.all_sites),
            "created": to_ms(now),
            "expires": to_ms(expires) if expires else "",
            "hash": secret_hash(secret),
        }
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.keys.api_key_key(key_id), mapping=record)
        if stored.sites:
            pipe.sadd(self.keys.api_key_sites_key(key_id), *stored.sites)
        pipe.zadd(self.keys.api_keys_key(), {key_id: to_ms(moment)})  # the order: to the ms, not the s
        pipe.execute()
        self.presence.learn(True)
        return stored, secret

    def find_all(self) -> list[ApiKey]:
        """Every key, oldest first (two round trips): by the registry's score, the creation time in
        ms (the record's ``created`` is shown to the second); keys of the same ms by id."""
        ids = [str(key_id) for key_id in self.client.zrange(self.keys.api_keys_key(), 0, -1)]
        return [key for key in self._fetch(ids) if key is not None]

    def find(self, key_id: str) -> ApiKey | None:
        """One key, or None."""
        return self._fetch([key_id])[0] if is_key_id(key_id) else None

    def revoke(self, key_id: str) -> bool:
        """Delete a key (and its rate-limit state). Whether it existed."""
        if not is_key_id(key_id):
            return False
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(self.keys.api_key_key(key_id))  # one key per DELETE: a cluster pipeline's rule
        pipe.delete(self.keys.api_key_sites_key(key_id))
        pipe.zrem(self.keys.api_keys_key(), key_id)
        deleted, _, _ = pipe.execute()
        self.presence.forget()
        return bool(deleted)

    def any_exist(self) -> bool:
        """Whether at least one key exists (read now, and remembered: :attr:`presence`)."""
        exists = bool(self.client.exists(self.keys.api_keys_key()))
        self.presence.learn(exists)
        return exists

    def _fetch(self, ids: Sequence[str]) -> list[ApiKey | None]:
        pipe = self.client.pipeline(transaction=False)
        for key_id in ids:
            pipe.hgetall(self.keys.api_key_key(key_id))
            pipe.smembers(self.keys.api_key_sites_key(key_id))
        replies = pipe.execute() if ids else []
        return [_api_key(replies[i], replies[i + 1]) for i in range(0, len(replies), 2)]

    def _sha(self) -> str:
        """The SHA of the check as this server runs it (flagged allow-oom on Redis 7 and later)."""
        return runnable(self.client, self._script).sha

    # -- per request -------------------------------------------------------------------------------
    def check_key(
        self,
        secret: str,
        budget: str,
        policy: RatePolicy | None,
        site_id: int | None = None,
        *,
        prefetch_site: int | None = None,
    ) -> KeyCheck:
        """Check a presented secret (and whether it may write ``site_id``), and take one request
        from its ``budget``. One round trip (none for a string that is not shaped like a key), which
        also reads whether the site ``prefetch_site`` exists, when given (:attr:`KeyCheck.site_exists`)."""
        key_id = key_id_of(secret)
        if key_id is None:
            return KeyCheck("unknown")
        keys = (self.keys.api_key_key(key_id), self.keys.api_key_sites_key(key_id))
        args = _args(secret_hash(secret), policy, site_id, budget)
        _, reply, site_exists = self._run(keys, args, registry=False, site=prefetch_site)
        check = replace(_key_check(reply, policy), site_exists=site_exists)
        if check.verdict != "unknown":
            self.presence.learn(True)  # its record was found: a key exists
        return check

    def check_address(
        self,
        address: str,
        budget: str,
        policy: RatePolicy | None,
        *,
        want_exists: bool,
        prefetch_site: int | None = None,
    ) -> AddressCheck:
        """Take one request from a client address's ``budget`` and, if ``want_exists``, learn whether
        any key exists, in one round trip (none when neither is needed), which also reads whether the
        site ``prefetch_site`` exists, when given. Whether keys exist comes from :attr:`presence` when
        it knows; the registry is read otherwise, and a failed read keeps what it knew, if anything."""
        ask = want_exists and self.presence.must_ask()
        if policy is None:
            return self._presence(want_exists, ask, prefetch_site)
        keys = (self.keys.address_bucket_key(address, budget),)
        args = _args("", policy, None, budget)
        try:
            keys_exist, reply, site_exists = self._run(keys, args, registry=ask, site=prefetch_site)
        except UNREACHABLE:
            if not (ask and self.presence.seen):
                raise
            self.presence.keep()  # the registry's node may be the one failing: try without it
            keys_exist, reply, site_exists = self._run(keys, args, registry=False, site=prefetch_site)
        if ask and keys_exist is not None:
            self.presence.learn(keys_exist)
        known = self.presence.seen if want_exists else None  # as just read, or remembered
        return AddressCheck(_key_check(reply, policy).rate, known, site_exists)

    def _presence(self, want_exists: bool, ask: bool, site: int | None) -> AddressCheck:
        """Without a budget to take: whether keys exist (read if ``ask``) and whether ``site`` exists
        (when given), in one round trip (none when neither is needed). A failed registry read keeps
        "keys exist" when they had been seen (the site is then left to the view)."""
        commands: list[tuple[Any, ...]] = [("EXISTS", self.keys.api_keys_key())] if ask else []
        if site is not None:
            commands.append(("EXISTS", self.keys.site_key(site)))
        try:
            replies = self._send(commands) if commands else []
            for item in replies:
                if isinstance(item, Exception):
                    raise item
        except UNREACHABLE:
            if not (ask and self.presence.seen):
                raise
            self.presence.keep()
            return AddressCheck(None, True, None)
        if ask:
            self.presence.learn(bool(replies[0]))
        known = self.presence.seen if want_exists else None  # as just read, or remembered
        return AddressCheck(None, known, bool(replies[-1]) if site is not None else None)

    def _run(
        self, keys: tuple[str, ...], args: tuple[Any, ...], *, registry: bool, site: int | None
    ) -> tuple[bool | None, Any, bool | None]:
        """The check script, with EXISTS of the key registry before it and of ``site``'s hash after
        it when asked: one round trip (two the first time a server meets the script). Returns
        (registry exists, script reply, site exists)."""
        for attempt in (1, 2):
            commands: list[tuple[Any, ...]] = []
            if registry:
                commands.append(("EXISTS", self.keys.api_keys_key()))
            commands.append(("EVALSHA", self._sha(), len(keys), *keys, *args))
            if site is not None:
                commands.append(("EXISTS", self.keys.site_key(site)))
            replies = self._send(commands)
            reply = replies[1 if registry else 0]
            if not isinstance(reply, NoScriptError) or attempt == 2:
                break
            load_script(self.client, self._script)
        for item in replies:
            if isinstance(item, Exception):
                raise item
        keys_exist = bool(replies[0]) if registry else None
        return keys_exist, reply, bool(replies[-1]) if site is not None else None

    def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """``commands`` in one round trip, their replies (an error reply as its exception).

        On every request, so leaner than a redis-py pipeline (no command stack, callbacks or
        per-command bookkeeping: the replies here need no conversion): one pooled connection, the
        commands packed and sent at once, the replies read in order. A network error falls back to a
        pipeline once, which retries as the client is configured to. On a cluster the commands (of up
        to three slots) go through :func:`redisolar.dao.routing.run_commands`: one pipeline per node."""
        if store.is_cluster(self.client):
            return routing.run_commands(self.client, [routing.Routed(_keys_of(c), c) for c in commands])
        pool = self.client.connection_pool
        try:
            connection = pool.get_connection()
        except (redis.ConnectionError, redis.TimeoutError):
            return self._pipelined(commands)
        try:
            connection.send_packed_command(connection.pack_commands(commands))
            return [_reply(connection) for _ in commands]
        except (redis.ConnectionError, redis.TimeoutError):
            connection.disconnect()
        finally:
            pool.release(connection)
        return self._pipelined(commands)

    def _pipelined(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """``commands`` through a redis-py pipeline (with the client's retries)."""
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(pipe.execute(raise_on_error=False))


UNREACHABLE = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ClusterError,
    redis.exceptions.RedisClusterException,  # for one key's EXISTS: no node reachable, slot not covered
    StoreUnavailable,
)
"""Errors that mean "the store (or the registry's node) cannot answer now"."""


def _keys_of(command: tuple[Any, ...]) -> tuple[str, ...]:
    """The keys of an ``EXISTS key`` or ``EVALSHA sha n key...`` command (the only ones sent here)."""
    if command[0] == "EVALSHA":
        return tuple(command[3 : 3 + int(command[2])])
    return tuple(command[1:])


def _reply(connection: Any) -> Any:
    """The next reply on ``connection``; an error reply returned as its exception, not raised."""
    try:
        return connection.read_response()
    except redis.ResponseError as exc:
        return exc


@dataclass(frozen=True)
class AddressCheck:
    """The answer for a request without a key: the rate decision (None: no limit), whether any key
    exists (None: not asked) and whether the prefetched site exists (None: not asked)."""

    rate: RateDecision | None
    keys_exist: bool | None
    site_exists: bool | None


def _args(hashed: str, policy: RatePolicy | None, site_id: int | None, budget: str) -> tuple[Any, ...]:
    """The check script's ARGV."""
    interval = f"{policy.interval_ms:.6f}" if policy else "0"
    site = "" if site_id is None else site_id
    return (hashed, interval, policy.burst if policy else 0, site, f"rl:{budget}")


def _key_check(reply: list[Any], policy: RatePolicy | None) -> KeyCheck:
    verdict = str(reply[0])
    if verdict != "ok":
        return KeyCheck(verdict)
    _, scope, site_ok, allowed, remaining, reset_ms, retry_ms = reply
    rate = None
    if policy is not None:
        rate = RateDecision(policy, bool(int(allowed)), int(remaining), int(reset_ms), int(retry_ms))
    return KeyCheck("ok", str(scope), bool(int(site_ok)), rate)


def _api_key(record: dict[str, str], sites: set[str]) -> ApiKey | None:
    if not record:
        return None
    return ApiKey(
        id=record["id"],
        scope=record["scope"],
        name=record.get("name", ""),
        sites=tuple(sorted(int(s) for s in sites)),
        all_sites=record.get("all_sites") == "1",
        created=_time(record.get("created")),
        expires=_time(record.get("expires")),
        last_used=_time(record.get("last_used")),
    )


def _time(ms: str | None) -> datetime | None:
    return from_ms(int(ms)) if ms else None
