"""Site storage: the site hashes and the index structures kept in step with them.

Every write keeps the hash, ``sites:ids``, the state/city/postal index sets, ``sites:geo`` and the
capacity leaderboard (with its running sum) in step, atomically, in one Lua script per site
(``sites_upsert.lua``, ``sites_delete.lua``). Which index sets a site must leave depends on what its
hash holds; the caller passes the keys of the values it believes are stored and the script checks
that belief before writing (compare-and-set), so there is no read-then-write race. A new site costs
one round trip, a changed one two. The index keys are shared by all sites, so the store needs a
standalone server (not a Redis Cluster).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import redis
from redis.client import Pipeline
from redis.exceptions import ResponseError, WatchError

from redisolar.dao.board_sums import board_sum
from redisolar.dao.key_manager import KeyManager, key_manager
from redisolar.dao.scripts import ScriptCall, run_scripts, script
from redisolar.dao.sites.hashes import (
    SITE_FIELDS,
    TAG_SEPARATOR,
    decoded,
    normalized,
    site_from_row,
    text,
    word_prefixes,
)
from redisolar.dao.sites.query import GEO_MAX_LAT, checked_id
from redisolar.errors import InvalidInput, SiteAlreadyExists, SiteNotFound
from redisolar.models.site import Site

WRITE_ATTEMPTS = 100
"""Tries of a guarded write: each retry carries the values that beat it, so contention ends quickly."""

BATCH_SIZE = 5000
"""Sites written per round trip by :meth:`SiteStore.insert_many`."""

Stored = tuple[str, str, str] | None
"""The state, city and postal code a site hash holds, or None when there is no hash."""


class SiteStore:
    """Sites in Redis: writes (each keeping the indexes in step), reads, count and total capacity.

    The client may decode responses or not and speak RESP2 or RESP3.
    """

    def __init__(self, client: redis.Redis, *, keys: KeyManager | None = None) -> None:
        self.redis = client
        self.keys = keys or key_manager
        self._site_key_tail = self._tail()

    def _tail(self) -> str:
        """What follows the id in a site hash key (site_key = site_key_prefix + id + tail)."""
        prefix, key = self.keys.site_key_prefix(), self.keys.site_key(1)
        if not key.startswith(prefix + "1"):
            raise ValueError("KeyManager.site_key must start with site_key_prefix followed by the id")
        return key[len(prefix) + 1 :]

    # -- writes ------------------------------------------------------------------------------------
    def insert(self, site: Site, pipeline: Pipeline | None = None) -> None:
        """Insert or replace ``site`` and its index entries.

        With ``pipeline``, the write is queued there (after one read now, for the index keys to
        leave); if the site changes before the pipeline runs, the queued script fails with a
        ``STALE`` error instead of corrupting the indexes.
        """
        if pipeline is None:
            self._write(site, "upsert")
            return
        _check_geo_indexable(site)
        stored = self._read_stored(site.id)
        call = self._upsert_call(site, "upsert", stored, strict=True)
        pipeline.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)

    def insert_many(self, *sites: Site) -> None:
        """Insert or replace many sites (the last one wins for a repeated id).

        New sites cost one round trip per batch of up to ``BATCH_SIZE``; sites that exist already one
        more (their stored values come back with the first attempt).
        """
        for site in sites:
            _check_geo_indexable(site)  # all of them before any write
        latest = {site.id: site for site in sites}
        batch = list(latest.values())
        for start in range(0, len(batch), BATCH_SIZE):
            self._write_batch(batch[start : start + BATCH_SIZE])

    def create(self, site: Site) -> None:
        """Insert ``site``, which must be new; else raise :class:`SiteAlreadyExists`."""
        self._write(site, "create")

    def update(self, site: Site) -> None:
        """Replace an existing site; raise :class:`SiteNotFound` if there is none with its id."""
        self._write(site, "update")

    def delete(self, site_id: int) -> bool:
        """Delete a site, its index entries and its capacity leaderboard entry. Returns whether it existed."""
        site_id = checked_id(site_id)
        stored: Stored = None
        for _ in range(WRITE_ATTEMPTS):
            reply = self._run(self._delete_call(site_id, stored))
            if reply[0] == "OK":
                return reply[1] == "1"
            stored = _stored_from(reply)
        raise WatchError(f"Site {site_id} kept changing; it was not deleted")

    def _write(self, site: Site, mode: str) -> bool:
        """Run the upsert script until its guard holds. Returns whether the site existed."""
        stored: Stored = None
        for _ in range(WRITE_ATTEMPTS):
            reply = self._run(self._upsert_call(site, mode, stored))
            if reply[0] == "OK":
                return reply[1] == "1"
            if reply[0] == "EXISTS":
                raise SiteAlreadyExists(site.id)
            if reply[0] == "MISSING":
                raise SiteNotFound(site.id)
            stored = _stored_from(reply)
        raise WatchError(f"Site {site.id} kept changing; it was not written")

    def _write_batch(self, sites: list[Site]) -> None:
        pending: list[tuple[Site, Stored]] = [(site, None) for site in sites]
        for _ in range(WRITE_ATTEMPTS):
            if not pending:
                return
            calls = [self._upsert_call(site, "upsert", stored) for site, stored in pending]
            replies = [decoded(r) for r in run_scripts(self.redis, calls)]
            stale = [(s, r) for (s, _), r in zip(pending, replies, strict=True) if r[0] != "OK"]
            pending = [(s, _stored_from(r)) for s, r in stale]
        if pending:
            raise WatchError(f"Site {pending[0][0].id} kept changing; it was not written")

    def _run(self, call: ScriptCall) -> list[str]:
        return list(decoded(run_scripts(self.redis, [call])[0]))

    def _read_stored(self, site_id: int) -> Stored:
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(self.keys.site_key(site_id))
        pipe.hmget(self.keys.site_key(site_id), ["state", "city", "postal_code"])
        pipe.script_exists(script("sites_upsert").sha)
        exists, values, loaded = pipe.execute()
        if not loaded[0]:
            self.redis.script_load(script("sites_upsert").source)
        if not exists:
            return None
        state, city, postal = ("" if v is None else text(v) for v in values)
        return state, city, postal

    def _index_keys(self, state: str, city: str, postal: str) -> list[str]:
        keys = self.keys
        return [keys.site_state_key(state), keys.site_city_key(city), keys.site_postal_key(postal)]

    def _upsert_call(self, site: Site, mode: str, stored: Stored, *, strict: bool = False) -> ScriptCall:
        _check_geo_indexable(site)
        new_keys = self._index_keys(site.state, site.city, site.postal_code)
        old_keys = self._index_keys(*stored) if stored else new_keys
        coordinate = site.coordinate
        keys = (
            self.keys.site_key(site.id),
            self.keys.site_ids_key(),
            self.keys.site_geo_key(),
            self.keys.capacity_leaderboard_key(),
            *new_keys,
            *old_keys,
            self.keys.board_sum_key(self.keys.capacity_leaderboard_key()),
        )
        args = (
            mode,
            "1" if strict else "0",
            *_belief(stored),
            str(site.id),
            self.keys.member(site.id),
            repr(site.capacity),
            repr(coordinate.lng) if coordinate else "",
            repr(coordinate.lat) if coordinate else "",
            *(item for pair in self._hash_fields(site).items() for item in pair),
        )
        return ScriptCall(script("sites_upsert"), keys, args)

    def _delete_call(self, site_id: int, stored: Stored) -> ScriptCall:
        old_keys = self._index_keys(*stored) if stored else self._index_keys("", "", "")
        keys = (
            self.keys.site_key(site_id),
            self.keys.site_ids_key(),
            self.keys.site_geo_key(),
            self.keys.capacity_leaderboard_key(),
            *old_keys,
            self.keys.board_sum_key(self.keys.capacity_leaderboard_key()),
        )
        args = (*_belief(stored), str(site_id), self.keys.member(site_id))
        return ScriptCall(script("sites_delete"), keys, args)

    def _hash_fields(self, site: Site) -> dict[str, str]:
        fields = {
            "id": str(site.id),
            "capacity": repr(site.capacity),
            "panels": str(site.panels),
            "address": site.address,
            "city": site.city,
            "state": site.state,
            "postal_code": site.postal_code,
            "idx_state": normalized(self.keys.site_state_key, site.state),
            "idx_city": normalized(self.keys.site_city_key, site.city),
            "idx_postal": normalized(self.keys.site_postal_key, site.postal_code),
            "idx_prefixes": TAG_SEPARATOR.join(word_prefixes(site.address, site.city)),
        }
        if site.coordinate is not None:
            lat, lng = repr(site.coordinate.lat), repr(site.coordinate.lng)
            fields.update(lat=lat, lng=lng, location=f"{lng},{lat}")
        return fields

    # -- reads -------------------------------------------------------------------------------------
    def find_by_id(self, site_id: int) -> Site | None:
        """The site with that id, or None."""
        return site_from_row(self.redis.hmget(self.keys.site_key(checked_id(site_id)), list(SITE_FIELDS)))

    def find_by_ids(self, ids: Iterable[int]) -> list[Site | None]:
        """The sites with those ids, in the same order, None for a missing one (one round trip)."""
        keys = [self.keys.site_key(checked_id(site_id)) for site_id in ids]
        if not keys:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, list(SITE_FIELDS))
        return [site_from_row(row) for row in pipe.execute()]

    def find_all(self) -> list[Site]:
        """Every site, by ascending id, in one round trip (``sites_find_all.lua``: standalone server)."""
        call = ScriptCall(
            script("sites_find_all"),
            (self.keys.site_ids_key(),),
            (self.keys.site_key_prefix(), self._site_key_tail, *SITE_FIELDS),
        )
        rows = run_scripts(self.redis, [call])[0]
        return [site for site in (site_from_row(row) for row in rows) if site is not None]

    def exists(self, site_id: int) -> bool:
        """Whether a site with that id exists."""
        return bool(self.redis.exists(self.keys.site_key(checked_id(site_id))))

    def count(self) -> int:
        """The number of sites."""
        return int(self.redis.zcard(self.keys.site_ids_key()))

    def get_total_capacity(self) -> float:
        """The sum of all sites' capacities in kW: the capacity board's running sum (one round trip)."""
        return board_sum(self.redis, self.keys.capacity_leaderboard_key())


def _check_geo_indexable(site: Site) -> None:
    if site.coordinate is not None and abs(site.coordinate.lat) > GEO_MAX_LAT:
        raise InvalidInput(
            f"Latitude {site.coordinate.lat} is beyond ±{GEO_MAX_LAT}, the range Redis can index",
            {"site_id": site.id},
        )


def _belief(stored: Stored) -> tuple[str, str, str, str]:
    return ("1", *stored) if stored else ("0", "", "", "")


def _stored_from(reply: Sequence[Any]) -> Stored:
    """The stored values a ``STALE`` script reply reports."""
    if reply[0] != "STALE":
        raise ResponseError(f"Unexpected reply from a sites script: {reply[0]!r}")
    if reply[1] != "1":
        return None
    return text(reply[2]), text(reply[3]), text(reply[4])
