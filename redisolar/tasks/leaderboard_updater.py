"""The leaderboard reconciler (the seed's Step 5 ``LeaderboardUpdater``).

Ingest keeps the daily boards and the fleet's hourly rollup current by itself; this reconciler
recomputes them from the stored readings (the boards of one day, the rollup over the retention window),
to repair what a crash between a write and its derived updates could leave behind, and after a
site's capacity changes. When ``FLEET_SHARDS`` differs from the layout the derived keys were built
with (``fleet:shards``), the pass rebuilds every indexed day's boards and the whole rollup window in
the new layout, then records it: changing ``FLEET_SHARDS`` needs no migration, only this pass (the
periodic reconciler's first pass at start-up, or ``POST /api/analytics/leaderboards/update``). It also
repairs the fleet-wide site indexes from the site hashes (a site's write is two single-slot calls;
:mod:`redisolar.dao.sites.reconcile`). Scores carry the data version
they came from, so a reconcile racing an ingest never overwrites a newer score. Across processes, one
reconcile runs at a time (a Redis lock); the periodic thread is started only by the process that
should run it (``redisolar serve`` starts it in one process), never at import time.
"""

from __future__ import annotations

import logging
import threading
import time as clock
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import redis

from redisolar.dao.key_manager import KeyManager, key_manager
from redisolar.dao.leaderboard_dao import LeaderboardDao
from redisolar.dao.site_dao_redis import SiteDaoRedis
from redisolar.dao.timeseries_dao import TimeSeriesDao
from redisolar.localtime import day_date, fleet_today, local_day_bounds, local_day_number
from redisolar.models.site import Site
from redisolar.timeutil import MS_PER_DAY, utcnow

log = logging.getLogger(__name__)

CHUNK = 500
LOCK_NAME = "leaderboard_updater"
PERIODIC_FLEET_HOURS = 48
"""Hours of the fleet rollup a periodic reconcile rebuilds after its first, full pass."""


LOCAL_DAYS_MIGRATION = "local-day-boards"
"""Its field in ``migrations:{sites}`` once the day boards were rebuilt in site-local days."""


def rebuild_boards_once(client: redis.Redis, keys: KeyManager, updater: LeaderboardUpdater) -> bool:
    """At start-up (:func:`redisolar.preflight.migrate_store`): the day boards of a store written before
    site-local days counted UTC days; rebuild those within the retention window once
    (:meth:`LeaderboardUpdater.rebuild_local_days`), then mark it done (one ``HEXISTS`` afterwards).
    Idempotent: two processes starting together both rebuild the same totals. Returns whether it ran."""
    marker = keys.migrations_key()
    if client.hexists(marker, LOCAL_DAYS_MIGRATION):
        return False
    if client.zcard(keys.leaderboard_days_key()):
        dates = updater.rebuild_local_days()
        log.info("Rebuilt the day boards of %d dates in site-local days", len(dates))
    try:
        client.hset(marker, LOCAL_DAYS_MIGRATION, "done")
    except redis.exceptions.OutOfMemoryError:
        log.warning("Redis is out of memory: the local-day board rebuild will be checked at the next start")
    return True


@dataclass(frozen=True)
class UpdateReport:
    """What one reconcile did."""

    day: date
    sites: int
    capacity_entries: int
    daily_scores_changed: int


class LeaderboardUpdater:
    """Recomputes the capacity board and a day's generation/efficiency boards from the data."""

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        keys: KeyManager | None = None,
        site_dao: SiteDaoRedis | None = None,
        timeseries_dao: TimeSeriesDao | None = None,
        leaderboard_dao: LeaderboardDao | None = None,
        lock_timeout_s: float = 300.0,
        fleet_timezone: str = "UTC",
    ) -> None:
        self.redis = redis_client
        self.keys = keys or key_manager
        self.site_dao = site_dao or SiteDaoRedis(redis_client, keys=self.keys)
        self.timeseries_dao = timeseries_dao or TimeSeriesDao(redis_client, keys=self.keys)
        self.leaderboard_dao = leaderboard_dao or LeaderboardDao(redis_client, self.site_dao, keys=self.keys)
        self.lock_timeout_s = lock_timeout_s
        self.fleet_timezone = fleet_timezone
        """The zone whose date is the fleet's "today" (``DEFAULT_TIMEZONE``): the default day of a pass."""
        self.is_running = False
        self.on_pass: Callable[[str, float], None] | None = None
        """Told of every pass: its outcome (``done``, ``skipped``, ``failed``) and its seconds (the
        app sets :func:`redisolar.metrics.record_reconcile`)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one pass ----------------------------------------------------------------------------------
    def update_all_leaderboards(
        self, day: date | None = None, fleet_hours: int | None = None
    ) -> UpdateReport | None:
        """Reconcile every board for ``day`` (default today, UTC) and the fleet's hourly rollup over
        the last ``fleet_hours`` hours (default: the whole retention window) under the
        cross-process lock.

        Returns None when another process holds the lock (its pass does the same work).
        """
        start, outcome = clock.perf_counter(), "failed"
        try:
            report = self._locked_update(day, fleet_hours)
            outcome = "skipped" if report is None else "done"
            return report
        finally:
            if self.on_pass is not None:
                self.on_pass(outcome, clock.perf_counter() - start)

    def _locked_update(self, day: date | None, fleet_hours: int | None) -> UpdateReport | None:
        lock = self.redis.lock(self.keys.lock_key(LOCK_NAME), timeout=self.lock_timeout_s, blocking=False)
        if not lock.acquire():
            log.info("leaderboard reconcile skipped: another process is running it")
            return None
        try:
            return self._update_all(day or self.leaderboard_dao.fleet_today(self.fleet_timezone), fleet_hours)
        finally:
            lock.release()

    def _update_all(self, day: date, fleet_hours: int | None) -> UpdateReport:
        capacity = self.update_capacity_leaderboard()
        former = self.timeseries_dao.fleet.stored_layout()
        days = [day] if former == self.keys.fleet_shards else self._relayout_days(day)
        changed = 0
        for board_day in days:
            changed += self.update_generation_leaderboard(board_day)
            self.leaderboard_dao.resum_daily_boards(board_day)
        retention_days = self.timeseries_dao.default_retention // MS_PER_DAY
        if retention_days:
            self.leaderboard_dao.prune_daily_boards(retention_days + 1)
        if former != self.keys.fleet_shards:
            hours = self.update_fleet_hours(None)
            self.timeseries_dao.fleet.finish_relayout(former)
        else:
            hours = self.update_fleet_hours(fleet_hours)
        log.info(
            "leaderboards reconciled for %s: %d sites, %d scores changed, %d fleet hours rebuilt",
            day, capacity, changed, hours,
        )  # fmt: skip
        return UpdateReport(day, self.site_dao.count(), capacity, changed)

    def _relayout_days(self, day: date) -> list[date]:
        """``FLEET_SHARDS`` changed since the last pass: every indexed board day and ``day``, their
        boards in the new layout cleared, to be rebuilt from the readings (the former layout's keys
        are no longer read and expire with the retention window)."""
        days = sorted({*self.leaderboard_dao.daily_board_days(), day})
        log.warning("FLEET_SHARDS is now %d: rebuilding %d days of boards", self.keys.fleet_shards, len(days))
        self.leaderboard_dao.clear_daily_boards(days)
        return days

    def update_capacity_leaderboard(self) -> int:
        """Repair the site indexes (the capacity board, its sum, the running totals, the search sets)
        from the site hashes: what a crash between a site's two writes leaves behind
        (:mod:`redisolar.dao.sites.reconcile`). Returns the number of sites."""
        return self.leaderboard_dao.rebuild_capacity_leaderboard()

    def update_generation_leaderboard(self, day: date | None = None) -> int:
        """Recompute a day's generation and efficiency scores of every site from its readings.

        Costs about three round trips per 500 sites (ids, hashes, totals and scores); no call walks
        the fleet. Returns the number of scores that changed.
        """
        day = day or self.leaderboard_dao.fleet_today(self.fleet_timezone)
        changed = 0
        for chunk in self._site_chunks():
            totals = self.timeseries_dao.get_local_day_totals([(s.id, s.timezone) for s in chunk], day)
            day_number = (day - date(1970, 1, 1)).days
            changed += self.timeseries_dao.boards.apply(
                (site.id, day_number, version, generation, site.capacity, hours)
                for site in chunk
                for version, generation, count, hours in [totals[site.id]]
                if count > 0
            )
        return changed

    def update_fleet_hours(self, hours: int | None = None) -> int:
        """Rebuild the fleet's hourly rollup over the last ``hours`` hours (default: the retention
        window) from every site's readings (one round trip for the site list, about four per 500
        sites, three more); entries of deleted sites go. Returns how many hours have entries."""
        site_ids = [site_id for page in self.site_dao.iter_ids() for site_id in page]
        return self.timeseries_dao.rebuild_fleet_hours(site_ids, utcnow(), hours)

    def _site_chunks(self) -> Iterator[list[Site]]:
        """Every site, in chunks of at most :data:`CHUNK` (a page of ids, then their hashes)."""
        for ids in self.site_dao.iter_ids():
            for i in range(0, len(ids), CHUNK):
                yield [site for site in self.site_dao.find_by_ids(ids[i : i + CHUNK]) if site is not None]

    def rebuild_site_days(self, site: Site) -> int:
        """After a site's time zone changed: take the site off every day board (its entries counted the
        former zone's days), recompose its history rollups over the retention window in the new zone
        (:meth:`HistoryDao.rebuild`), then score its local days from their day records (one round
        trip per day). Returns how many days it is scored on."""
        self.leaderboard_dao.remove_site_from_day_boards(site.id)
        newest = self.timeseries_dao.backend.newest([site.id])[site.id]
        if newest is None:
            return 0
        zone = site.timezone or "UTC"
        retention = self.timeseries_dao.default_retention
        first = local_day_number(max(0, newest - retention) if retention else 0, zone)
        last = local_day_number(newest, zone)
        if not retention:  # keep everything: from the site's oldest day that holds a reading
            first = max(first, last - 366)
        # the day totals are the history's day records: recompose them in the new zone first
        start = local_day_bounds(day_date(first), zone)[0]
        self.timeseries_dao.history.rebuild(self.timeseries_dao.backend.name, site.id, start, newest + 1)
        scores = []
        for number in range(first, last + 1):
            day = day_date(number)
            version, generation, count, hours = self.timeseries_dao.get_local_day_totals(
                [(site.id, zone)], day
            )[site.id]
            if count > 0:
                scores.append((site.id, number, version, generation, site.capacity, hours))
        self.timeseries_dao.boards.apply(scores)
        return len(scores)

    def rebuild_local_days(self, days: int | None = None) -> list[date]:
        """Rebuild the day boards of the last ``days`` dates (default the retention window) before the
        fleet's today and the two after it, from the readings: once after the upgrade to site-local
        days (the boards held UTC days; :func:`rebuild_boards_once`). Older boards keep their UTC
        scores until they expire (their readings are gone). Returns the dates rebuilt."""
        today = fleet_today(self.fleet_timezone)
        window = days if days is not None else self.timeseries_dao.default_retention // MS_PER_DAY + 1
        dates = [today + timedelta(days=k) for k in range(-window, 2)]
        self.leaderboard_dao.clear_daily_boards(dates)
        for day in dates:
            self.update_generation_leaderboard(day)
        return dates

    update_efficiency_leaderboard = update_generation_leaderboard
    """Efficiency scores are set together with generation scores (same day totals)."""

    # -- periodic thread ---------------------------------------------------------------------------
    def start(self, update_interval: float = 300.0) -> None:
        """Reconcile every ``update_interval`` seconds in a daemon thread, until :meth:`stop`."""
        if self.is_running:
            return
        self._stop.clear()
        self.is_running = True
        self._thread = threading.Thread(
            target=self._loop, args=(update_interval,), name="leaderboard-updater", daemon=True
        )
        self._thread.start()
        log.info("leaderboard updater started, every %.0f s", update_interval)

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self.is_running = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        log.info("leaderboard updater stopped")

    def _loop(self, interval: float) -> None:
        """Ingest keeps every hour exact; a periodic pass only repairs what a crash between a
        site's write and its fleet update can leave, so after a first full pass it rebuilds the
        last :data:`PERIODIC_FLEET_HOURS` hours (an on-demand pass, ``POST
        /api/analytics/leaderboards/update``, rebuilds the whole window)."""
        fleet_hours = None  # the first pass rebuilds the whole window, later ones the recent hours
        while not self._stop.is_set():
            try:
                if self.update_all_leaderboards(fleet_hours=fleet_hours) is not None:
                    fleet_hours = PERIODIC_FLEET_HOURS
            except redis.RedisError:
                log.exception("leaderboard reconcile failed; retrying in %.0f s", interval)
            self._stop.wait(interval)
