"""Site storage: the site hashes and the fleet-wide indexes kept in step with them.

A site's write is two single-slot scripts, so that it works on a Redis Cluster:

1. ``site_write.lua`` on the site hash (slot ``{site:ID}``): create, update, upsert or remove, a
   compare-and-set on the hash's version (field ``ver``);
2. ``sites_index.lua`` on the fleet-wide indexes (slot ``{sites}``: ids, geo, state/city/postal sets,
   capacity board and its sum, running totals): sets the site's entries from the new values,
   absolutely, with the same version. It keeps a record of what it indexed per site, so it removes
   the old entries itself; a retry changes nothing and an older version never replaces a newer one.

The caller chooses the new version (``max(stored + 1, now in µs)``) before sending, so both calls go
in one pipeline: one round trip for a new site (the usual case of a load), two when the site exists
(the first attempt's replies carry the stored version and the indexed values, the second succeeds).
On a cluster ``run_scripts`` sends each call to its slot's node. A crash between the two calls leaves
the index behind the hash; :mod:`.reconcile` repairs it (run by the background reconciler).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.client import Pipeline
from redis.exceptions import ResponseError, WatchError

from redisolar.dao.board_sums import board_sum
from redisolar.dao.key_manager import KeyManager, key_manager
from redisolar.dao.scripts import ScriptCall, load_script, run_scripts, script
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
from redisolar.dao.sites.totals import capacity_limbs, stats_from_hash
from redisolar.errors import InvalidInput, SiteAlreadyExists, SiteNotFound
from redisolar.localtime import encode_tzt
from redisolar.models.site import Site

WRITE_ATTEMPTS = 100
"""Tries of a guarded write: each retry carries the values that beat it, so contention ends quickly."""

BATCH_SIZE = 5000
"""Sites written per round trip by :meth:`SiteStore.insert_many`."""

PAGE = 1000
"""Ids read per round trip when walking every site (:meth:`SiteStore.iter_ids`)."""

Indexed = tuple[str, str, str] | None
"""The state, city and postal code the index record of a site holds, or None when there is none."""


@dataclass
class Write:
    """One site's write in progress: what the caller believes is stored, and what is done."""

    site_id: int
    mode: str
    site: Site | None = None
    """The new values (None to remove)."""
    stored: str = ""
    """The hash version believed stored ("" for no hash)."""
    indexed: Indexed = None
    """The index record's values believed stored."""
    version: int = 0
    site_done: bool = False
    index_done: bool = False
    existed: bool = False
    refused: str = ""
    """"EXISTS" or "MISSING" when the site script refused the write."""

    def next_version(self) -> None:
        """A version above the stored one and (when clocks agree) above any earlier write's."""
        self.version = max(int(self.stored or 0) + 1, time.time_ns() // 1000)

    @property
    def done(self) -> bool:
        """Whether both scripts took the write, or the site script refused it."""
        return bool(self.refused) or (self.site_done and self.index_done)


class SiteStore:
    """Sites in Redis: writes (each keeping the indexes in step), reads, count and totals.

    The client may decode responses or not and speak RESP2 or RESP3.
    """

    def __init__(self, client: redis.Redis, *, keys: KeyManager | None = None) -> None:
        self.redis = client
        self.keys = keys or key_manager

    # -- writes ------------------------------------------------------------------------------------
    def insert(self, site: Site, pipeline: Pipeline | None = None) -> None:
        """Insert or replace ``site`` and its index entries.

        With ``pipeline``, the write is queued there (after one read now, of the stored version and
        index record); if the site changes before the pipeline runs, the queued scripts fail with a
        ``STALE`` error instead of corrupting the indexes. (Standalone servers: a cluster pipeline
        does not take scripts.)
        """
        if pipeline is None:
            self._write([Write(site.id, "upsert", site)])
            return
        _check_geo_indexable(site)
        write = Write(site.id, "upsert", site)
        write.stored, write.indexed = self._read_beliefs(site.id)
        write.next_version()
        for call in (self._site_call(write, strict=True), self.index_call(write, strict=True)):
            pipeline.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)

    def insert_many(self, *sites: Site) -> None:
        """Insert or replace many sites (the last one wins for a repeated id).

        New sites cost one round trip per batch of up to ``BATCH_SIZE``; sites that exist already one
        more (their stored versions and index records come back with the first attempt).
        """
        for site in sites:
            _check_geo_indexable(site)  # all of them before any write
        latest = {site.id: site for site in sites}
        batch = list(latest.values())
        for start in range(0, len(batch), BATCH_SIZE):
            self._write([Write(site.id, "upsert", site) for site in batch[start : start + BATCH_SIZE]])

    def create(self, site: Site) -> None:
        """Insert ``site``, which must be new; else raise :class:`SiteAlreadyExists`."""
        self._write([Write(site.id, "create", site)])

    def update(self, site: Site) -> None:
        """Replace an existing site; raise :class:`SiteNotFound` if there is none with its id."""
        self._write([Write(site.id, "update", site)])

    def delete(self, site_id: int) -> bool:
        """Delete a site, its index entries and its capacity leaderboard entry. Returns whether it existed."""
        write = Write(checked_id(site_id), "remove")
        self._write([write])
        return write.existed

    def _write(self, writes: list[Write]) -> None:
        """Run the writes' two scripts until both took (or the site script refused the write)."""
        for write in writes:
            if write.site is not None:
                _check_geo_indexable(write.site)
            write.next_version()
        pending = writes
        for _ in range(WRITE_ATTEMPTS):
            calls = [call for write in pending for call in self._calls(write)]
            replies = [decoded(r) for r in run_scripts(self.redis, [c for c, _ in calls])]
            for (_, apply), reply in zip(calls, replies, strict=True):
                apply(reply)
            pending = [write for write in pending if not write.done]
            if not pending:
                break
        else:
            raise WatchError(f"Site {pending[0].site_id} kept changing; it was not written")
        for write in writes:
            if write.refused == "EXISTS":
                raise SiteAlreadyExists(write.site_id)
            if write.refused == "MISSING" and write.mode == "update":
                raise SiteNotFound(write.site_id)

    def _calls(self, write: Write) -> list[tuple[ScriptCall, Any]]:
        """This attempt's calls of ``write``, each with the function that takes its reply."""
        calls = []
        if not write.site_done:
            calls.append((self._site_call(write), lambda reply: _site_reply(write, reply)))
        calls.append((self.index_call(write), lambda reply: index_reply(write, reply)))
        return calls

    def _read_beliefs(self, site_id: int) -> tuple[str, Indexed]:
        """The stored version and index record of a site (one round trip; loads the scripts)."""
        site_key = self.keys.site_key(site_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(site_key)
        pipe.hget(site_key, "ver")
        exists, version = pipe.execute()
        record = self.redis.hget(self.keys.site_indexed_key(), str(site_id))
        for name in ("site_write", "sites_index"):
            load_script(self.redis, script(name))
        stored = (text(version) if version is not None else "0") if exists else ""
        return stored, indexed_values(record)

    def _index_keys(self, state: str, city: str, postal: str) -> list[str]:
        keys = self.keys
        return [keys.site_state_key(state), keys.site_city_key(city), keys.site_postal_key(postal)]

    def _site_call(self, write: Write, *, strict: bool = False) -> ScriptCall:
        fields = self._hash_fields(write.site) if write.site is not None else {}
        args = (
            write.mode,
            "1" if strict else "0",
            write.stored,
            str(write.version),
            *(item for pair in fields.items() for item in pair),
        )
        return ScriptCall(script("site_write"), (self.keys.site_key(write.site_id),), args)

    def index_call(self, write: Write, *, strict: bool = False) -> ScriptCall:
        """The ``sites_index.lua`` call of ``write`` (its version, its believed index record)."""
        site = write.site
        old_keys = self._index_keys(*(write.indexed or ("", "", "")))
        new_keys = self._index_keys(site.state, site.city, site.postal_code) if site else old_keys
        board = self.keys.capacity_leaderboard_key()
        keys = (
            self.keys.site_ids_key(),
            self.keys.site_geo_key(),
            board,
            self.keys.board_sum_key(board),
            self.keys.site_indexed_key(),
            self.keys.site_stats_key(),
            *new_keys,
            *old_keys,
        )
        args = (
            _index_mode(write),
            "1" if strict else "0",
            "1" if write.indexed else "0",
            *(write.indexed or ("", "", "")),
            str(write.site_id),
            self.keys.member(write.site_id),
            str(write.version),
            index_record(site, write.version) if site else "",
        )
        return ScriptCall(script("sites_index"), keys, args)

    def _hash_fields(self, site: Site) -> dict[str, str]:
        """The hash's fields; with a zone, its offset history ``tzt`` for the scripts' local days
        (:func:`redisolar.localtime.encode_tzt`, written with the zone so they always agree)."""
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
        if site.timezone is not None:
            fields["timezone"] = site.timezone
            fields["tzt"] = encode_tzt(site.timezone)
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

    def iter_ids(self) -> Iterator[list[int]]:
        """Every indexed site id, ascending, in pages of :data:`PAGE` (one round trip each)."""
        last = 0
        while True:
            page = self.redis.zrangebyscore(self.keys.site_ids_key(), f"({last}", "+inf", start=0, num=PAGE)
            ids = [int(text(v)) for v in page]
            if ids:
                yield ids
            if len(ids) < PAGE:
                return
            last = ids[-1]

    def find_all(self) -> list[Site]:
        """Every site, by ascending id: two round trips per :data:`PAGE` sites (no call walks the
        fleet; for the CLI and the reconciler, not for a request)."""
        return [site for ids in self.iter_ids() for site in self.find_by_ids(ids) if site is not None]

    def exists(self, site_id: int) -> bool:
        """Whether a site with that id exists."""
        return bool(self.redis.exists(self.keys.site_key(checked_id(site_id))))

    def count(self) -> int:
        """The number of sites."""
        return int(self.redis.zcard(self.keys.site_ids_key()))

    def get_total_capacity(self) -> float:
        """The sum of the capacity board's scores in kW (the sites' capacities, unless scores were set
        by hand): its running sum, which ``sites_index.lua`` sets from the exact totals (one round trip)."""
        return board_sum(self.redis, self.keys.capacity_leaderboard_key())

    def stats(self) -> dict[str, Any]:
        """Totals over every site and per state, from the running totals (one round trip, O(states))."""
        return stats_from_hash(self.redis.hgetall(self.keys.site_stats_key()))


def index_record(site: Site, version: int) -> str:
    """What ``sites_index.lua`` records for ``site`` at ``version`` (see its header)."""
    coordinate = site.coordinate
    values = (
        str(version),
        site.state,
        site.city,
        site.postal_code,
        repr(site.capacity),
        str(site.panels),
        repr(coordinate.lng) if coordinate else "",
        repr(coordinate.lat) if coordinate else "",
        *(str(limb) for limb in capacity_limbs(site.capacity)),
    )
    return TAG_SEPARATOR.join(values)


def _index_mode(write: Write) -> str:
    """The index script's mode: the write's, or "upsert" once the site script took the write (its
    hash is the truth then, whatever an earlier crash left in the index)."""
    if write.mode in ("create", "update") and write.site_done:
        return "upsert"
    return write.mode


def _site_reply(write: Write, reply: Sequence[Any]) -> None:
    status = text(reply[0])
    if status == "OK":
        write.site_done, write.existed = True, text(reply[1]) == "1"
    elif status in ("EXISTS", "MISSING"):
        write.refused = status
        if write.mode == "remove":  # no hash: the index entries still go
            write.refused, write.site_done = "", True
    elif status == "STALE":
        write.stored = text(reply[1])
        write.index_done = False
        write.next_version()
    else:
        raise ResponseError(f"Unexpected reply from site_write.lua: {status!r}")


def index_reply(write: Write, reply: Sequence[Any]) -> None:
    """Take a ``sites_index.lua`` reply into ``write``.

    Only this attempt's reply decides whether the index took the write: an ``OLD`` of an earlier
    attempt (whose site call was ``STALE``) does not stand for the version this attempt wrote.
    """
    status = text(reply[0])
    write.index_done = False
    if status == "OK":
        write.index_done = True
        site = write.site
        write.indexed = (site.state, site.city, site.postal_code) if site else None
    elif status == "OLD":  # a newer write's values are indexed already
        write.index_done = True
    elif status == "STALE":
        write.indexed = (text(reply[2]), text(reply[3]), text(reply[4])) if text(reply[1]) == "1" else None
    elif status in ("EXISTS", "MISSING"):
        pass  # the site script's reply decides; once it took the write the index upserts
    else:
        raise ResponseError(f"Unexpected reply from sites_index.lua: {status!r}")
    if not write.site_done and write.index_done and status == "OK":
        write.index_done = False  # indexed a version the hash did not take: redo with the next one


def indexed_values(record: Any) -> Indexed:
    """The state, city and postal code of an index record (None for no record)."""
    if record is None:
        return None
    values = text(record).split(TAG_SEPARATOR)
    return values[1], values[2], values[3]


def _check_geo_indexable(site: Site) -> None:
    if site.coordinate is not None and abs(site.coordinate.lat) > GEO_MAX_LAT:
        raise InvalidInput(
            f"Latitude {site.coordinate.lat} is beyond ±{GEO_MAX_LAT}, the range Redis can index",
            {"site_id": site.id},
        )
