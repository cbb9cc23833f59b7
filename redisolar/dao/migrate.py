"""Moves data from earlier key layouts to this one; idempotent, run at start-up and by ``redisolar migrate``.

Before the ``{sites}`` hash tag, the site indexes had no tag (``sites:ids``, ``sites:geo``,
``sites:state:*``, ``sites:city:*``, ``sites:postal:*``, ``capacity_leaderboard`` and its ``:sum``),
and there were no index records or running totals. The site hashes themselves did not change, so the
migration re-indexes every site hash into the new layout (the sites reconcile, which builds the
records and the running totals), then deletes the old keys. The old keys go last: a migration that
stops half-way runs again whole at the next start, and a second run finds nothing to do.

Cost: one round trip when there is nothing to migrate (``sites:ids`` existed whenever a site did);
otherwise the reconcile's (three round trips per 1,000 sites) and one SCAN of the keyspace for the old
sets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from redisolar.dao.key_manager import KeyManager
from redisolar.dao.sites.hashes import text
from redisolar.dao.sites.reconcile import reconcile_sites
from redisolar.dao.sites.store import PAGE, SiteStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MigrationReport:
    """What a migration did: sites re-indexed into the new layout, old keys deleted."""

    sites: int
    deleted_keys: int


def migrate(client: redis.Redis, keys: KeyManager) -> MigrationReport:
    """Move the site indexes of an earlier layout to ``{sites}`` (see the module docstring)."""
    legacy = _legacy_keys(client, keys)
    if not legacy:
        return MigrationReport(0, 0)
    log.info("Migrating the site indexes to the {sites} layout (%d old keys)", len(legacy))
    report = reconcile_sites(SiteStore(client, keys=keys))
    legacy += [
        text(k) for pattern in keys.legacy_site_set_patterns() for k in client.scan_iter(pattern, PAGE)
    ]
    pipe = client.pipeline(transaction=False)
    for key in legacy:  # one key per command: on a cluster the old keys are in many slots
        pipe.unlink(key)
    deleted = sum(int(n) for n in pipe.execute())
    log.info("Migrated %d sites; deleted %d old keys", report.sites, deleted)
    return MigrationReport(report.sites, deleted)


def _legacy_keys(client: redis.Redis, keys: KeyManager) -> list[str]:
    """The old fixed-name keys that exist (one round trip)."""
    ids, geo, board = keys.legacy_site_index_keys()
    names = [ids, geo, board, keys.board_sum_key(board)]
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.exists(name)
    return [name for name, exists in zip(names, pipe.execute(), strict=True) if exists]
