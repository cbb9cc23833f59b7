"""The fleet's hourly generation rollup: one owner, absolute values, a reconciler.

For each clock hour HOUR (ms // 3,600,000) the keys share the hash tag ``{fh:HOUR}`` (one Redis Cluster
slot per hour, so every script touches one slot; see :class:`~redisolar.dao.key_manager.KeyManager`):

- ``fleet:gen:{fh:HOUR}:s:B`` hashes: site id -> 16 bytes ``'<dd'`` (the site's data version, the
  absolute Wh it generated in that hour), for the sites with ``id // FLEET_BUCKET_SITES == B``;
- ``fleet:gen:{fh:HOUR}:b``: the set of the hour's bucket numbers B;
- ``fleet:gen:{fh:HOUR}``: the hour's total, kept by ``fleet_hour_set.lua`` as (new - old);
- ``fleet:last_seen`` (sorted set): each site's newest reading (ms), raised only (``ZADD GT``).

This module owns these keys: the ingest service (:mod:`redisolar.services.ingest`) asks it for the
calls to run after a site's write, and the time-series DAO delegates a site's removal here.

A site's write script returns the site's absolute sum of every hour it touched with its new data
version; ``fleet_hour_set.lua`` keeps an entry only if its version is not older than the stored one, so
a retried pipeline, a repeated update or a late, stale one changes nothing, and writers need no
ordering. Deletion removes a site's entries outright; :meth:`FleetHours.rebuild` (the reconciler)
rewrites the entries from the readings, removes those of deleted sites and recomputes the totals.

Memory (Redis 7/8, default ``hash-max-listpack-entries`` 128 and ``-value`` 64): a bucket of at most 100
sites stays a listpack, where one site-hour is its field (the id as an integer) and its 16-byte value
with their headers, about 22 bytes; per hour come the total, the index and one hash per bucket, each
a key (name, dict and expiry entries, object header). Measured here (``MEMORY USAGE`` of every key,
200 consecutive ids × 24 hours): 25.5 bytes per site-hour, about 27 with the keyspace's own entries.
So 10,000 sites × 30 days × 24 hours = 7.2 million site-hours ≈ 195 MB; about 8 % of what the
readings themselves cost at one reading per 5 minutes (core: 12 × 28 = 336 bytes per site-hour), as
much as they cost at one reading per hour. Sparse ids (one site per bucket) cost about 180 bytes per
site-hour (123 measured plus the key entries). Every key expires at the end of its hour plus
the retention (and not before a day from the write), as the day boards do.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import redis
from redis.client import Pipeline

from redisolar.dao.key_manager import KeyManager
from redisolar.dao.scripts import ScriptCall, run_scripts, script

FLEET_BUCKET_SITES = 100
"""Sites per bucket hash: fewer than the listpack limit (128), so buckets stay compact."""
MS_PER_HOUR = 3_600_000
DELETE_VERSION = 2**53
"""The version of a deletion's removals: newer than any data version (microseconds since 1970)."""
REBUILD_CHUNK = 500
"""Sites read per round trip when the reconciler rebuilds the rollup."""

Entry = tuple[int, int, int, float | None]
"""(site id, hour, data version, absolute Wh of the site in that hour; None removes the entry)."""

HourSums = dict[int, tuple[int, dict[int, float]]]
"""Per site: (data version, read before the data; {hour: Wh} of the hours with readings)."""

Reader = Callable[[list[int], int, int], HourSums]
"""Reads ``HourSums`` of some sites over ``[start_ms, end_ms)`` in a bounded number of round trips."""


def bucket_of(site_id: int) -> int:
    """The bucket number of a site."""
    return site_id // FLEET_BUCKET_SITES


class FleetHours:
    """Writes and reads the fleet's hourly rollup (see the module docstring)."""

    def __init__(self, client: redis.Redis, keys: KeyManager, retention_ms: int) -> None:
        self.client = client
        self.keys = keys
        self.retention_ms = retention_ms

    # -- writes ------------------------------------------------------------------------------------
    def expire_at(self, hour: int) -> int:
        """When an hour's keys expire (unix seconds): end of the hour plus retention, or tomorrow."""
        keep_until_ms = (hour + 1) * MS_PER_HOUR + self.retention_ms
        return max(keep_until_ms // 1000, int(time.time()) + 86_400)

    def calls(self, entries: Iterable[Entry]) -> list[ScriptCall]:
        """One ``fleet_hour_set.lua`` call per hour the entries touch."""
        by_hour: dict[int, list[tuple[int, int, float | None]]] = defaultdict(list)
        for site_id, hour, version, wh in entries:
            by_hour[hour].append((site_id, version, wh))
        return [self._call(hour, rows) for hour, rows in by_hour.items()]

    def _call(
        self,
        hour: int,
        rows: Sequence[tuple[int, int, float | None]],
        buckets: Iterable[int] = (),
        prune_before: int | None = None,
    ) -> ScriptCall:
        """The call setting ``rows`` (site, version, Wh) of one hour; with ``prune_before``, the
        entries of ``buckets`` not in ``rows`` and older than that version are removed too."""
        index = {b: 3 + i for i, b in enumerate(sorted({*buckets, *(bucket_of(s) for s, _, _ in rows)}))}
        args: list[Any] = [self.expire_at(hour), "" if prune_before is None else prune_before]
        for site_id, version, wh in rows:
            args += [index[bucket_of(site_id)], site_id, version, "" if wh is None else repr(float(wh))]
        keys = (
            self.keys.fleet_hour_total_key(hour),
            self.keys.fleet_hour_index_key(hour),
            *(self.keys.fleet_hour_bucket_key(hour, b) for b in index),
        )
        return ScriptCall(script("fleet_hour_set"), keys, tuple(args))

    def last_seen_call(self, newest: Iterable[tuple[int, int]]) -> ScriptCall:
        """The call raising each ``(site_id, newest ms)`` in ``fleet:last_seen`` (ZADD GT: a late
        update never goes backwards), as derived state (``zset_add.lua`` runs even when Redis is out
        of memory, after the site's write was accepted)."""
        pairs = [str(x) for site_id, ms in newest for x in (ms, site_id)]
        return ScriptCall(script("zset_add"), (self.keys.fleet_last_seen_key(),), ("GT", *pairs))

    def remove_site(self, site_id: int, hours: Iterable[int]) -> None:
        """Remove a site's entries of ``hours`` and its last-seen entry outright (one round trip)."""
        last_seen = self.keys.fleet_last_seen_key()
        run_scripts(
            self.client,
            self.calls((site_id, h, DELETE_VERSION, None) for h in hours),
            lambda pipe: pipe.zrem(last_seen, str(site_id)),
        )

    # -- reads -------------------------------------------------------------------------------------
    def queue_active(self, pipe: Pipeline, since_ms: int) -> None:
        """Queue the count of sites whose newest reading is at ``since_ms`` or later."""
        pipe.zcount(self.keys.fleet_last_seen_key(), since_ms, "+inf")

    def queue_totals(self, pipe: Pipeline, hours: Iterable[int]) -> None:
        """Queue one GET per hour total (replies: text or None)."""
        for hour in hours:
            pipe.get(self.keys.fleet_hour_total_key(hour))

    @staticmethod
    def sum_totals(replies: Iterable[Any]) -> float:
        """The sum of queued totals' replies."""
        return math.fsum(float(v) for v in replies if v is not None)

    # -- reconciler ----------------------------------------------------------------------------------
    def rebuild(self, site_ids: Sequence[int], hours: range, read: Reader) -> int:
        """Rebuild the entries of ``hours`` from the readings of the live ``site_ids`` (``read``),
        drop those of other (deleted) sites, then recompute every hour's total exactly.

        One round trip for the indexes, ``read``'s round trips plus one per chunk of about
        ``REBUILD_CHUNK`` sites, two to recompute the totals. Returns how many hours have entries.
        """
        (seconds, micros), indexed = self._start(hours)
        start_version = seconds * 1_000_000 + micros
        live: dict[int, list[int]] = defaultdict(list)
        for site_id in site_ids:
            live[bucket_of(site_id)].append(site_id)
        for chunk in _chunks(sorted(set(live) | {b for bs in indexed.values() for b in bs}), live):
            chunk_sites = [s for b in chunk for s in live.get(b, [])]
            sums = read(chunk_sites, hours.start * MS_PER_HOUR, hours.stop * MS_PER_HOUR)
            run_scripts(
                self.client, list(self._rebuild_calls(hours, set(chunk), indexed, sums, start_version))
            )
        return self._resum(hours)

    def _rebuild_calls(
        self, hours: range, chunk: set[int], indexed: dict[int, set[int]], sums: HourSums, start_version: int
    ) -> Iterator[ScriptCall]:
        """Per hour, the call that sets the chunk's sites' entries and prunes the chunk's buckets."""
        for hour in hours:
            rows = _rows(sums, hour)
            buckets = chunk & indexed[hour]
            if rows or buckets:
                yield self._call(hour, rows, buckets, start_version)

    def _start(self, hours: range) -> tuple[tuple[int, int], dict[int, set[int]]]:
        """Redis's clock (before any data is read) and each hour's indexed buckets: two round trips."""
        now = self.client.time()  # by itself: a cluster pipeline refuses TIME
        pipe = self.client.pipeline(transaction=False)
        for hour in hours:
            pipe.smembers(self.keys.fleet_hour_index_key(hour))
        members = pipe.execute()
        return now, {h: {int(b) for b in m} for h, m in zip(hours, members, strict=True)}

    def _resum(self, hours: range) -> int:
        """Recompute every hour's total from its entries (two round trips)."""
        pipe = self.client.pipeline(transaction=False)
        for hour in hours:
            pipe.smembers(self.keys.fleet_hour_index_key(hour))
        calls = [
            ScriptCall(
                script("fleet_hour_sum"),
                (
                    self.keys.fleet_hour_total_key(hour),
                    self.keys.fleet_hour_index_key(hour),
                    *(self.keys.fleet_hour_bucket_key(hour, int(b)) for b in sorted(members, key=int)),
                ),
                (),
            )
            for hour, members in zip(hours, pipe.execute(), strict=True)
            if members
        ]
        run_scripts(self.client, calls)
        return len(calls)


def _rows(sums: HourSums, hour: int) -> list[tuple[int, int, float | None]]:
    """The (site, version, Wh) of the sites with readings in ``hour``."""
    return [(s, version, by_hour[hour]) for s, (version, by_hour) in sums.items() if hour in by_hour]


def _chunks(buckets: list[int], live: dict[int, list[int]]) -> Iterator[list[int]]:
    """Whole buckets, grouped so that a group holds about ``REBUILD_CHUNK`` live sites at most."""
    chunk: list[int] = []
    size = 0
    for bucket in buckets:
        if chunk and size + len(live.get(bucket, [])) > REBUILD_CHUNK:
            yield chunk
            chunk, size = [], 0
        chunk.append(bucket)
        size += len(live.get(bucket, []))
    if chunk:
        yield chunk
