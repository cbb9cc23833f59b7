"""The fleet's hourly generation rollup: one owner, absolute values, a reconciler.

For each clock hour HOUR (ms // 3,600,000) the keys share the hash tag ``{fh:HOUR}`` (one Redis Cluster
slot per hour, so every script touches one slot; see :class:`~redisolar.dao.key_manager.KeyManager`).
With ``FLEET_SHARDS`` = S > 1 every hour (and last-seen) is split into S parts, ``{fh:HOUR:k}`` and
``{ls:k}`` holding the sites with ``id % S == k``: writes go to the site's part, reads add the parts
up in the same single round trip (S commands per figure instead of one).

- ``fleet:gen:{fh:HOUR}:s:B`` hashes: site id -> 16 bytes ``'<dd'`` (the site's data version, the
  absolute Wh it generated in that hour), for the sites of bucket B (:func:`bucket_of`: about
  ``FLEET_BUCKET_SITES`` consecutive sites of the part, however many parts);
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
from redisolar.dao.scripts import MEMBERS_PER_CALL, ScriptCall, chunks, run_scripts, script

FLEET_BUCKET_SITES = 100
"""Sites per bucket hash: fewer than the listpack limit (128), so buckets stay compact."""
MS_PER_HOUR = 3_600_000
DELETE_VERSION = 2**53
"""The version of a deletion's removals: newer than any data version (microseconds since 1970)."""
REBUILD_CHUNK = 500
"""Sites read per round trip when the reconciler rebuilds the rollup."""

Entry = tuple[int, int, int, float | None]
"""(site id, hour, data version, absolute Wh of the site in that hour; None removes the entry)."""

HourSums = dict[int, tuple[int, dict[int, float], int]]
"""Per site: (data version, read before the data; {hour: Wh} of the hours with readings; ms of its
newest reading)."""

Reader = Callable[[list[int], int, int], HourSums]
"""Reads ``HourSums`` of some sites over ``[start_ms, end_ms)`` in a bounded number of round trips."""


def bucket_of(site_id: int, shards: int = 1) -> int:
    """The bucket number of a site when the rollup has ``shards`` parts: consecutive ids of one part
    share a bucket, ``FLEET_BUCKET_SITES`` of them when ids are dense."""
    return site_id // (FLEET_BUCKET_SITES * shards)


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

    def bucket(self, site_id: int) -> int:
        """The bucket of a site in its part."""
        return bucket_of(site_id, self.keys.fleet_shards)

    def calls(self, entries: Iterable[Entry]) -> list[ScriptCall]:
        """One ``fleet_hour_set.lua`` call per (hour, part) the entries touch and
        :data:`~redisolar.dao.scripts.MEMBERS_PER_CALL` sites."""
        by_hour: dict[tuple[int, int], list[tuple[int, int, float | None]]] = defaultdict(list)
        for site_id, hour, version, wh in entries:
            by_hour[hour, self.keys.fleet_shard(site_id)].append((site_id, version, wh))
        return [
            self._call(hour, shard, part) for (hour, shard), rows in by_hour.items() for part in chunks(rows)
        ]

    def _call(
        self,
        hour: int,
        shard: int,
        rows: Sequence[tuple[int, int, float | None]],
        buckets: Iterable[int] = (),
        prune_before: int | None = None,
    ) -> ScriptCall:
        """The call setting ``rows`` (site, version, Wh; all of part ``shard``) of one hour; with
        ``prune_before``, the entries of ``buckets`` not in ``rows`` and older than that version are
        removed too."""
        index = {b: 3 + i for i, b in enumerate(sorted({*buckets, *(self.bucket(s) for s, _, _ in rows)}))}
        args: list[Any] = [self.expire_at(hour), "" if prune_before is None else prune_before]
        for site_id, version, wh in rows:
            args += [index[self.bucket(site_id)], site_id, version, "" if wh is None else repr(float(wh))]
        keys = (
            self.keys.fleet_hour_total_key(hour, shard),
            self.keys.fleet_hour_index_key(hour, shard),
            *(self.keys.fleet_hour_bucket_key(hour, b, shard) for b in index),
        )
        return ScriptCall(script("fleet_hour_set"), keys, tuple(args))

    def last_seen_calls(self, newest: Iterable[tuple[int, int]]) -> list[ScriptCall]:
        """The calls raising each ``(site_id, newest ms)`` in last-seen (ZADD GT: a late update never
        goes backwards), one per part touched, as derived state (``zset_add.lua`` runs even when
        Redis is out of memory, after the site's write was accepted)."""
        pairs: dict[int, list[str]] = defaultdict(list)
        for site_id, ms in newest:
            pairs[self.keys.fleet_shard(site_id)] += [str(ms), str(site_id)]
        return [  # 2 arguments a site
            ScriptCall(script("zset_add"), (self.keys.fleet_last_seen_key(shard),), ("GT", *part))
            for shard, args in pairs.items()
            for part in chunks(args, 2 * MEMBERS_PER_CALL)
        ]

    def remove_site(self, site_id: int, hours: Iterable[int]) -> None:
        """Remove a site's entries of ``hours`` and its last-seen entry outright (one round trip)."""
        last_seen = self.keys.fleet_last_seen_key(self.keys.fleet_shard(site_id))
        run_scripts(
            self.client,
            self.calls((site_id, h, DELETE_VERSION, None) for h in hours),
            lambda pipe: pipe.zrem(last_seen, str(site_id)),
        )

    # -- reads -------------------------------------------------------------------------------------
    def period(self, since_ms: int, hours: Iterable[int]) -> tuple[float, int]:
        """The fleet's Wh over ``hours`` (the sum of every part's hour totals) and how many sites
        have their newest reading at ``since_ms`` or later: one round trip, S × (hours + 1) commands."""
        pipe = self.client.pipeline(transaction=False)
        read = self.queue_period(pipe, since_ms, hours)
        return read(pipe.execute())

    def queue_period(
        self, pipe: Pipeline, since_ms: int, hours: Iterable[int]
    ) -> Callable[[list[Any]], tuple[float, int]]:
        """Queue :meth:`period`'s commands on ``pipe`` (so a caller can add its own to the same round
        trip); the function returned reads their replies from the head of the pipeline's replies."""
        hours = list(hours)
        for shard in self.keys.shards():
            pipe.zcount(self.keys.fleet_last_seen_key(shard), since_ms, "+inf")
            for hour in hours:
                pipe.get(self.keys.fleet_hour_total_key(hour, shard))
        step = len(hours) + 1
        size = step * len(self.keys.shards())
        return lambda replies: self._period_of(replies[:size], step)

    @classmethod
    def _period_of(cls, replies: list[Any], step: int) -> tuple[float, int]:
        active = sum(int(replies[i]) for i in range(0, len(replies), step))
        totals = [v for i, v in enumerate(replies) if i % step]
        return cls.sum_totals(totals), active

    @staticmethod
    def sum_totals(replies: Iterable[Any]) -> float:
        """The sum of hour totals' replies (text or None)."""
        return math.fsum(float(v) for v in replies if v is not None)

    # -- layout ---------------------------------------------------------------------------------------
    def stored_layout(self) -> int:
        """The ``FLEET_SHARDS`` the sharded keys were last rebuilt with (1 when never recorded)."""
        value = self.client.get(self.keys.fleet_layout_key())
        return int(value) if value is not None else 1

    def finish_relayout(self, former: int) -> None:
        """After a rebuild in this layout: drop the former layout's last-seen sets (its hour keys are
        no longer read and expire with the retention window) and record the layout."""
        former_keys = KeyManager(self.keys.key_prefix, former)
        stale = {former_keys.fleet_last_seen_key(k) for k in former_keys.shards()}
        stale -= {self.keys.fleet_last_seen_key(k) for k in self.keys.shards()}
        for key in sorted(stale):  # one key a call: each may be on another node
            self.client.delete(key)
        self.client.set(self.keys.fleet_layout_key(), self.keys.fleet_shards)

    # -- reconciler ----------------------------------------------------------------------------------
    def rebuild(self, site_ids: Sequence[int], hours: range, read: Reader) -> int:
        """Rebuild the entries of ``hours`` from the readings of the live ``site_ids`` (``read``),
        drop those of other (deleted) sites, raise their last-seen to their newest reading, then
        recompute every hour's total exactly; part by part.

        Per part: one round trip for the indexes, ``read``'s round trips plus one per chunk of about
        ``REBUILD_CHUNK`` sites, two to recompute the totals. Returns how many (hour, part) totals
        have entries.
        """
        seconds, micros = self.client.time()  # by itself: a cluster pipeline refuses TIME
        start_version = seconds * 1_000_000 + micros  # before any data is read
        by_shard: dict[int, list[int]] = defaultdict(list)
        for site_id in site_ids:
            by_shard[self.keys.fleet_shard(site_id)].append(site_id)
        return sum(
            self._rebuild_shard(shard, by_shard.get(shard, []), hours, read, start_version)
            for shard in self.keys.shards()
        )

    def _rebuild_shard(
        self, shard: int, site_ids: list[int], hours: range, read: Reader, start_version: int
    ) -> int:
        indexed = self._indexed(hours, shard)
        live: dict[int, list[int]] = defaultdict(list)
        for site_id in site_ids:
            live[self.bucket(site_id)].append(site_id)
        for chunk in _chunks(sorted(set(live) | {b for bs in indexed.values() for b in bs}), live):
            chunk_sites = [s for b in chunk for s in live.get(b, [])]
            sums = read(chunk_sites, hours.start * MS_PER_HOUR, hours.stop * MS_PER_HOUR)
            calls = list(self._rebuild_calls(hours, shard, set(chunk), indexed, sums, start_version))
            calls += self.last_seen_calls((s, newest) for s, (_, _, newest) in sums.items())
            run_scripts(self.client, calls)
        return self._resum(hours, shard)

    def _rebuild_calls(
        self,
        hours: range,
        shard: int,
        chunk: set[int],
        indexed: dict[int, set[int]],
        sums: HourSums,
        start_version: int,
    ) -> Iterator[ScriptCall]:
        """Per hour, the call that sets the chunk's sites' entries and prunes the chunk's buckets."""
        for hour in hours:
            rows = _rows(sums, hour)
            buckets = chunk & indexed[hour]
            if rows or buckets:
                yield self._call(hour, shard, rows, buckets, start_version)

    def _indexed(self, hours: range, shard: int) -> dict[int, set[int]]:
        """Each hour's indexed buckets in a part (one round trip)."""
        pipe = self.client.pipeline(transaction=False)
        for hour in hours:
            pipe.smembers(self.keys.fleet_hour_index_key(hour, shard))
        return {h: {int(b) for b in m} for h, m in zip(hours, pipe.execute(), strict=True)}

    def _resum(self, hours: range, shard: int) -> int:
        """Recompute every hour's total of a part from its entries (two round trips)."""
        calls = [
            ScriptCall(
                script("fleet_hour_sum"),
                (
                    self.keys.fleet_hour_total_key(hour, shard),
                    self.keys.fleet_hour_index_key(hour, shard),
                    *(self.keys.fleet_hour_bucket_key(hour, b, shard) for b in sorted(members)),
                ),
                (),
            )
            for hour, members in self._indexed(hours, shard).items()
            if members
        ]
        run_scripts(self.client, calls)
        return len(calls)


def _rows(sums: HourSums, hour: int) -> list[tuple[int, int, float | None]]:
    """The (site, version, Wh) of the sites with readings in ``hour``."""
    return [(s, version, by_hour[hour]) for s, (version, by_hour, _) in sums.items() if hour in by_hour]


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
