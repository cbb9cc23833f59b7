"""Alert rules evaluated at ingest, where that is cheap: what the posted readings alone decide.

- **threshold** rules on the posted values: when a site's newest posted reading is its newest stored
  one, each threshold rule that applies at the site is decided on it (``temp_c > 70``: opens at once,
  or resolves once the value is back);
- **offline** rules: a reading less than the rule's ``minutes`` old (15, the least an automatic limit
  can be, when the rule has none) resolves the site's open offline alert.

Daylight and underperformance need windows and neighbours: the background evaluator keeps them (and
re-decides every rule each pass, so it stays the authority; this only makes the two cases above
immediate).

Cost. The rules are cached in each process for :data:`RULES_TTL_S` seconds (one ``HGETALL`` per
process that often, none per reading; a change made in this process is seen at once, one made in
another within :data:`RULES_TTL_S`). A site without an applicable offline or threshold rule adds
nothing to its ingest. A site with some adds one ``alert_open.lua`` / ``alert_resolve.lua`` call per
such rule to the ingest's derived-state round trip (no round trip of its own; each reads one small
hash of the site's slot and writes only when an alert opens or resolves). When one does, one more round
trip follows (the ingest's follow-up, shared with the index of days and rank events): the fleet index
(``alert_index.lua``) and the ``alert.opened`` / ``alert.resolved`` events (stream and notify stream,
so webhooks get them).

An alert opens once: ``alert_open.lua`` opens a rule's alert at a site only while none is open, in the
site's slot, so concurrent ingests and the evaluator cannot open two.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redisolar.alerts.conditions import MIN_OFFLINE_MINUTES, MS_PER_MINUTE, threshold_of
from redisolar.alerts.rules import Rule, RuleStore, generation, rules_for_site
from redisolar.alerts.store import AlertStore, Opening, Resolving, new_alert
from redisolar.dao.scripts import ScriptCall
from redisolar.events.stream import event_calls
from redisolar.timeutil import from_ms

if TYPE_CHECKING:
    from redisolar.dao.timeseries.base import Record, WriteOutcome
    from redisolar.dao.timeseries_dao import TimeSeriesDao

log = logging.getLogger(__name__)

RULES_TTL_S = 5.0
"""How long a process keeps the rules it read (a rule changed in another process applies at ingest
within this; the background evaluator reads them every pass)."""

AT_INGEST_KINDS = ("offline", "threshold")

_caches: weakref.WeakKeyDictionary[Any, _RuleCache] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


@dataclass
class _RuleCache:
    """The enabled offline and threshold rules of one store, and when they were read."""

    rules: list[Rule] = field(default_factory=list)
    read_at: float = float("-inf")
    generation: int = -1

    def current(self, series: TimeSeriesDao) -> list[Rule]:
        if self.generation != generation() or time.monotonic() - self.read_at > RULES_TTL_S:
            changes = generation()
            stored = RuleStore(series.redis, series.keys).all()
            self.rules = [r for r in stored if r.enabled and r.kind in AT_INGEST_KINDS]
            self.read_at, self.generation = time.monotonic(), changes
        return self.rules


def cached_rules(series: TimeSeriesDao) -> list[Rule]:
    """The enabled offline and threshold rules of ``series``' deployment, cached (see the module)."""
    with _lock:
        cache = _caches.get(series)
        if cache is None:
            cache = _caches[series] = _RuleCache()
    return cache.current(series)


@dataclass
class IngestChecks:
    """The alert calls of one ingest: :attr:`calls` run in its derived-state round trip, then
    :meth:`follow_up` of their replies gives the calls of its follow-up round trip (none when nothing
    opened or resolved)."""

    store: AlertStore
    openings: list[Opening] = field(default_factory=list)
    resolvings: list[Resolving] = field(default_factory=list)

    @property
    def calls(self) -> list[ScriptCall]:
        return self.store.calls(self.openings, self.resolvings)

    def follow_up(self, replies: list[Any]) -> list[ScriptCall]:
        """The fleet index's calls and the events of the alerts that opened and resolved."""
        opened, resolved = self.store.results(self.openings, replies)
        events: list[tuple[str, Mapping[str, Any]]] = [("alert.opened", a) for a in opened]
        events += [("alert.resolved", a) for a in resolved]
        for kind, alert in events:
            log.info(
                "%s at ingest: site %s, %s (%s)", kind, alert["site_id"], alert["kind"], alert["rule_id"]
            )
        return [*self.store.index_calls(opened, resolved), *event_calls(self.store.keys, events)]


def ingest_checks(
    series: TimeSeriesDao,
    by_site: Mapping[int, list[Record]],
    outcomes: list[WriteOutcome],
    require_sites: bool = True,
    now_ms: int | None = None,
) -> IngestChecks | None:
    """The alert checks of an ingest that wrote ``outcomes`` (None: nothing to check, e.g. no site
    written has an applicable rule; or ``require_sites`` is False: readings of unregistered sites,
    which no evaluator pass would ever resolve)."""
    if not require_sites or not outcomes:
        return None
    rules = cached_rules(series)
    if not rules:
        return None
    checks = IngestChecks(AlertStore(series.redis, series.keys))
    now = int(time.time() * 1000) if now_ms is None else now_ms
    at = from_ms(now).isoformat()
    for outcome in outcomes:
        for rule in rules_for_site(rules, outcome.site_id):
            _check(checks, rule, outcome, by_site.get(outcome.site_id, []), now, at)
    return checks if checks.openings or checks.resolvings else None


def _check(
    checks: IngestChecks, rule: Rule, outcome: WriteOutcome, records: list[Record], now: int, at: str
) -> None:
    site_id = outcome.site_id
    if rule.kind == "offline":
        limit = rule.minutes or MIN_OFFLINE_MINUTES
        silent = (now - outcome.newest) / MS_PER_MINUTE
        if silent <= limit:
            values = {"last_reading": from_ms(outcome.newest).isoformat(), "minutes_silent": round(silent, 1)}
            checks.resolvings.append(Resolving(site_id, rule.id, at, values, "a reading arrived"))
        return
    newest = max(records, key=lambda record: record[0]) if records else None
    if newest is None or newest[0] != outcome.newest or rule.metric is None:
        return  # a back-fill: the site's newest reading is not among these
    posted = {"wh_generated": newest[1], "wh_used": newest[2], "temp_c": newest[3]}
    posted["net_generation"] = newest[1] - newest[2]
    verdict = threshold_of(rule, (newest[0], posted[rule.metric]))
    if verdict.holds:
        checks.openings.append(Opening(site_id, rule.id, new_alert(site_id, rule, verdict, at)))
    elif verdict.holds is False:
        checks.resolvings.append(Resolving(site_id, rule.id, at, verdict.values, "condition cleared"))
