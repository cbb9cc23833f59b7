"""The alert evaluator: one pass reads what the rules need for every site, decides each (site, rule),
and opens or resolves alerts; a thread repeats it every ``ALERT_EVALUATION_SECONDS``.

One pass runs at a time across processes (a Redis lock, as the leaderboard reconciler); ``redisolar
serve`` runs the thread in one process. A pass reads the fleet in chunks of :data:`CHUNK` sites: the
site hashes, the open alerts and the newest reading (one round trip each), the generation of every
window a rule sums (one per window), then writes the chunk's changes (two). Two things are cached in
the evaluator's memory because they change slowly and cost a round trip per site: a site's usual
reading interval (for offline rules without ``minutes``; :data:`INTERVAL_TTL_S`) and its neighbours
within a radius (:data:`NEIGHBOURS_TTL_S`). Thresholds read each covered site's latest reading (a
round trip per site: keep fleet-wide thresholds few).
"""

from __future__ import annotations

import logging
import threading
import time as clock
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis

from redisolar.alerts import conditions
from redisolar.alerts.conditions import SiteData, Verdict
from redisolar.alerts.rules import Rule, RuleStore, rules_for_site
from redisolar.alerts.store import AlertStore, Opening, Resolving, new_alert
from redisolar.events import publish
from redisolar.models.site import MetricType
from redisolar.services import Services
from redisolar.timeutil import from_ms, to_ms, utcnow

log = logging.getLogger(__name__)

CHUNK = 500
LOCK_NAME = "alert_evaluator"
INTERVAL_TTL_S = 6 * 3600.0
NEIGHBOURS_TTL_S = 3600.0
INTERVAL_LOOKBACK_MS = 24 * 3_600_000


def _announce(services: Services, alert: dict[str, Any]) -> None:
    """Tell the world an alert opened or resolved: an ``alert.opened`` / ``alert.resolved`` event on
    the event stream (:func:`redisolar.events.publish`: the SSE clients and the webhooks). The alert is
    stored first; an event that Redis refuses is logged and lost (the alert itself is not)."""
    kind = "alert.opened" if alert["state"] == "open" else "alert.resolved"
    log.info("%s: site %s, %s (%s)", kind, alert["site_id"], alert["kind"], alert["rule_id"])
    try:
        publish(services.redis, services.keys, kind, alert)
    except redis.RedisError:
        log.warning("the %s event of alert %s was not published", kind, alert["id"], exc_info=True)


@dataclass
class PassReport:
    """What one pass did."""

    sites: int = 0
    opened: int = 0
    resolved: int = 0
    still_open: int = 0
    seconds: float = 0.0
    opened_alerts: list[dict[str, Any]] = field(default_factory=list)
    resolved_alerts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class AlertEvaluator:
    """Evaluates every rule at every site (see the module docstring)."""

    services: Services
    lock_timeout_s: float = 300.0
    on_pass: Callable[[str, float], None] | None = None
    announce: Callable[[Services, dict[str, Any]], None] = _announce
    last_open_by_kind: dict[str, int] = field(default_factory=dict)
    """Open alerts by kind after the last pass."""
    _intervals: dict[int, tuple[float, float | None]] = field(default_factory=dict)
    _neighbours: dict[tuple[int, float], tuple[float, list[int]]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def rules(self) -> RuleStore:
        return RuleStore(self.services.redis, self.services.keys)

    @property
    def store(self) -> AlertStore:
        return AlertStore(self.services.redis, self.services.keys)

    # -- one pass ----------------------------------------------------------------------------------
    def evaluate(self, now: datetime | None = None) -> PassReport | None:
        """One pass at ``now`` (default: the current time) under the lock; None if another process
        holds it."""
        start, outcome = clock.perf_counter(), "failed"
        try:
            lock = self.services.redis.lock(
                self.services.keys.lock_key(LOCK_NAME), timeout=self.lock_timeout_s, blocking=False
            )
            if not lock.acquire():
                outcome = "skipped"
                return None
            try:
                report = self._evaluate(to_ms(now or utcnow()))
            finally:
                lock.release()
            outcome = "done"
            report.seconds = clock.perf_counter() - start
            return report
        finally:
            if self.on_pass is not None:
                self.on_pass(outcome, clock.perf_counter() - start)

    def _evaluate(self, now_ms: int) -> PassReport:
        rules = [r for r in self.rules.all() if r.enabled]
        data: dict[int, SiteData] = {}
        open_alerts: dict[int, dict[str, str]] = {}
        for ids in self.services.sites.iter_ids():
            for i in range(0, len(ids), CHUNK):
                chunk = ids[i : i + CHUNK]
                open_alerts.update(self.store.open_by_site(chunk))
                data.update(self._gather(chunk, rules, now_ms))
        report = PassReport(sites=len(data))
        yields = _yields(data)
        site_ids = sorted(set(data) | set(open_alerts))
        for i in range(0, len(site_ids), CHUNK):
            self._decide(site_ids[i : i + CHUNK], rules, data, open_alerts, yields, now_ms, report)
        members = {
            f"{s}:{a}" for s, by_rule in self.store.open_by_site(site_ids).items() for a in by_rule.values()
        }
        report.still_open = len(members)
        self.store.repair_open_index(members)
        self.last_open_by_kind = self.store.open_counts()
        return report

    # -- reading -----------------------------------------------------------------------------------
    def _gather(self, chunk: list[int], rules: list[Rule], now_ms: int) -> dict[int, SiteData]:
        sites = [s for s in self.services.sites.find_by_ids(chunk) if s is not None]
        data = {s.id: SiteData(s) for s in sites}
        if not data or not rules:
            return data
        applying = {s: rules_for_site(rules, s) for s in data}
        ids = list(data)
        for site_id, newest in self.services.timeseries.backend.newest(ids).items():
            data[site_id].newest_ms = newest
        windows = {
            r.window_minutes
            for rs in applying.values()
            for r in rs
            if r.kind in ("daylight", "underperformance")
        }
        for window in sorted(windows):
            totals = self.services.timeseries.get_generation_totals(
                ids, from_ms(now_ms - window * 60_000), from_ms(now_ms)
            )
            for site_id, (_, wh, count) in totals.items():
                data[site_id].sums[window] = (wh, count)
        self._read_per_site(data, applying, now_ms)
        return data

    def _read_per_site(self, data: dict[int, SiteData], applying: dict[int, list[Rule]], now_ms: int) -> None:
        """The cached or per-site reads: usual intervals, neighbours, latest values."""
        radii: dict[float, list[int]] = {}
        for site_id, site_rules in applying.items():
            d = data[site_id]
            for rule in site_rules:
                if rule.kind == "offline" and rule.minutes is None and d.newest_ms is not None:
                    d.usual_interval_min = self._usual_interval(site_id, d.newest_ms)
                elif rule.kind == "underperformance" and d.site.coordinate is not None:
                    radii.setdefault(rule.radius_km, []).append(site_id)
                elif rule.kind == "threshold" and rule.metric is not None and not d.latest:
                    latest = self.services.timeseries.backend.latest(site_id)
                    d.latest = {m.value: p for m, p in latest.items()}
        for radius, ids in radii.items():
            for site_id, near in self._near(ids, radius).items():
                data[site_id].neighbours[radius] = near

    def _usual_interval(self, site_id: int, newest_ms: int) -> float | None:
        cached = self._intervals.get(site_id)
        if cached is not None and clock.monotonic() - cached[0] < INTERVAL_TTL_S:
            return cached[1]
        points = self.services.timeseries.get_readings_range(
            site_id,
            MetricType.WH_GENERATED,
            from_ms(newest_ms - INTERVAL_LOOKBACK_MS),
            from_ms(newest_ms + 1),
        )
        interval = conditions.usual_interval([to_ms(p.timestamp) for p in points])
        self._intervals[site_id] = (clock.monotonic(), interval)
        return interval

    def _near(self, site_ids: list[int], radius_km: float) -> dict[int, list[int]]:
        """Each site's neighbours within ``radius_km`` (cached; the misses in one round trip)."""
        now = clock.monotonic()
        found: dict[int, list[int]] = {}
        misses = []
        for site_id in site_ids:
            cached = self._neighbours.get((site_id, radius_km))
            if cached is not None and now - cached[0] < NEIGHBOURS_TTL_S:
                found[site_id] = cached[1]
            else:
                misses.append(site_id)
        if misses:
            pipe = self.services.redis.pipeline(transaction=False)
            for site_id in misses:
                pipe.geosearch(
                    self.services.keys.site_geo_key(), member=str(site_id), radius=radius_km, unit="km"
                )
            for site_id, reply in zip(misses, pipe.execute(raise_on_error=False), strict=True):
                near = [] if isinstance(reply, Exception) else [int(m) for m in reply if int(m) != site_id]
                self._neighbours[(site_id, radius_km)] = (now, near)
                found[site_id] = near
        return found

    # -- deciding and writing ----------------------------------------------------------------------
    def _decide(
        self,
        site_ids: list[int],
        rules: list[Rule],
        data: dict[int, SiteData],
        open_alerts: dict[int, dict[str, str]],
        yields: conditions.YieldOf,
        now_ms: int,
        report: PassReport,
    ) -> None:
        openings: list[Opening] = []
        resolvings: list[Resolving] = []
        at = from_ms(now_ms).isoformat()
        for site_id in site_ids:
            d, open_rules = data.get(site_id), open_alerts.get(site_id, {})
            applying = rules_for_site(rules, site_id) if d is not None else []
            for rule in applying:
                verdict = _verdict(rule, d, now_ms, yields) if d is not None else Verdict(None)
                if verdict.holds and rule.id not in open_rules:
                    openings.append(Opening(site_id, rule.id, new_alert(site_id, rule, verdict, at)))
                elif verdict.holds is False and rule.id in open_rules:
                    resolvings.append(Resolving(site_id, rule.id, at, verdict.values, "condition cleared"))
            for rule_id in set(open_rules) - {r.id for r in applying}:
                resolvings.append(Resolving(site_id, rule_id, at, {}, "rule removed or disabled"))
        opened, resolved = self.store.apply(openings, resolvings)
        report.opened += len(opened)
        report.resolved += len(resolved)
        report.opened_alerts += opened
        report.resolved_alerts += resolved
        for alert in [*opened, *resolved]:
            self.announce(self.services, alert)

    # -- periodic thread ---------------------------------------------------------------------------
    def start(self, interval: float) -> None:
        """Evaluate every ``interval`` seconds in a daemon thread, until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(interval,), name="alert-evaluator", daemon=True
        )
        self._thread.start()
        log.info("alert evaluator started, every %g s", interval)

    def stop(self, wait: bool = True) -> None:
        """Stop the thread (after its pass in flight) and, with ``wait``, wait for it (a daemon thread:
        an exiting process need not)."""
        self._stop.set()
        if self._thread is not None:
            if wait:
                self._thread.join()
            self._thread = None

    def _loop(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                self.evaluate()
            except redis.RedisError:
                log.exception("alert evaluation failed; retrying in %g s", interval)
            self._stop.wait(interval)


def _verdict(rule: Rule, data: SiteData, now_ms: int, yields: conditions.YieldOf) -> Verdict:
    if rule.kind == "offline":
        return conditions.offline(rule, data, now_ms)
    if rule.kind == "daylight":
        return conditions.daylight(rule, data, now_ms)
    if rule.kind == "underperformance":
        return conditions.underperformance(rule, data, now_ms, yields)
    return conditions.threshold(rule, data)


def _yields(data: dict[int, SiteData]) -> conditions.YieldOf:
    """kWh per kWp of a site over a window, from the pass's sums."""

    def of(site_id: int, window: int) -> float | None:
        d = data.get(site_id)
        if d is None or d.site.capacity <= 0 or window not in d.sums or d.sums[window][1] == 0:
            return None
        return d.sums[window][0] / 1000 / d.site.capacity

    return of
