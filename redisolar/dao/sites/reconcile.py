"""Repairs the fleet-wide site index from the site hashes (the truth).

A site's write is two calls (the hash, then the index; see :mod:`.store`); a crash between them leaves
the index behind. This pass, run by the background reconciler and by the migration:

1. walks the site hashes (``SCAN`` of ``site:{site:*``, on a cluster every master, in pages of
   :data:`~redisolar.dao.sites.store.PAGE`), compares each with its index record and re-indexes the
   ones that differ (``sites_index.lua`` in mode ``reindex``, at the hash's version);
2. walks the index records (``HSCAN``) and removes the entries of sites whose hash is gone.

Each page costs three round trips (hashes, records, fixes) and no call walks the fleet; the whole pass
is O(keyspace) for the SCAN, so it belongs in the background. Writes racing the pass win: the index
script never replaces a newer version.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from redisolar.dao.scripts import run_scripts
from redisolar.dao.sites.hashes import SITE_FIELDS, decoded, site_from_row, text
from redisolar.dao.sites.store import PAGE, SiteStore, Write, index_record, index_reply, indexed_values
from redisolar.store import scan_keys


@dataclass(frozen=True)
class ReconcileReport:
    """What one pass found: sites seen, re-indexed, and index entries of missing sites removed."""

    sites: int
    reindexed: int
    removed: int


def reconcile_sites(store: SiteStore) -> ReconcileReport:
    """Make the index agree with the site hashes (see the module docstring)."""
    seen = reindexed = 0
    for keys in _pages(_site_keys(store)):
        seen_page, fixed = _reindex_page(store, keys)
        seen += seen_page
        reindexed += fixed
    removed = sum(_remove_missing(store, ids) for ids in _pages(_indexed_ids(store)))
    return ReconcileReport(seen, reindexed, removed)


def _site_keys(store: SiteStore) -> Iterator[str]:
    pattern = store.keys.site_key_prefix() + "*"
    for key in scan_keys(store.redis, match=pattern, count=PAGE):
        yield text(key)


def _indexed_ids(store: SiteStore) -> Iterator[int]:
    for site_id, _ in store.redis.hscan_iter(store.keys.site_indexed_key(), count=PAGE):
        yield int(text(site_id))


def _pages(items: Iterable[Any]) -> Iterator[list[Any]]:
    page: list[Any] = []
    for item in items:
        page.append(item)
        if len(page) == PAGE:
            yield page
            page = []
    if page:
        yield page


def _reindex_page(store: SiteStore, keys: list[str]) -> tuple[int, int]:
    """Re-index the sites of ``keys`` whose record differs from their hash. Returns (seen, fixed)."""
    pipe = store.redis.pipeline(transaction=False)
    for key in keys:
        pipe.hmget(key, [*SITE_FIELDS, "ver"])
    rows = [decoded(row) for row in pipe.execute()]
    hashes = {}
    for row in rows:
        site = site_from_row(row[:-1])
        if site is not None:
            hashes[site.id] = (site, int(row[-1] or 0))
    if not hashes:
        return 0, 0
    records = store.redis.hmget(store.keys.site_indexed_key(), [str(i) for i in hashes])
    writes = []
    for (site, version), record in zip(hashes.values(), records, strict=True):
        if record is None or text(record) != index_record(site, version):
            write = Write(site.id, "reindex", site, version=version, site_done=True)
            write.indexed = indexed_values(record)
            writes.append(write)
    _run_index_calls(store, writes)
    return len(hashes), len(writes)


def _remove_missing(store: SiteStore, ids: list[int]) -> int:
    """Remove the index entries of the sites of ``ids`` that have no hash. Returns how many."""
    pipe = store.redis.pipeline(transaction=False)
    for site_id in ids:
        pipe.exists(store.keys.site_key(site_id))
    gone = [site_id for site_id, exists in zip(ids, pipe.execute(), strict=True) if not exists]
    if not gone:
        return 0
    records = store.redis.hmget(store.keys.site_indexed_key(), [str(i) for i in gone])
    writes = []
    for site_id, record in zip(gone, records, strict=True):
        if record is not None:
            version = int(text(record).split("\x1f", 1)[0]) + 1
            write = Write(site_id, "remove", None, version=version, site_done=True)
            write.indexed = indexed_values(record)
            writes.append(write)
    _run_index_calls(store, writes)
    return len(writes)


def _run_index_calls(store: SiteStore, writes: list[Write]) -> None:
    """Run the index calls of ``writes`` (one round trip; a retry for those whose belief was off)."""
    for _ in range(3):
        pending = [w for w in writes if not w.index_done]
        if not pending:
            return
        calls = [store.index_call(w) for w in pending]
        for write, reply in zip(pending, run_scripts(store.redis, calls), strict=True):
            index_reply(write, decoded(reply))
