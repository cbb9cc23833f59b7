"""The alert use cases the API and the CLI share: rules (create, replace, delete, list) and the alerts
(a page of the fleet's, a site's history, one evaluation pass)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from redisolar.alerts.evaluator import AlertEvaluator, PassReport
from redisolar.alerts.rules import Rule, RuleStore, rule_out
from redisolar.alerts.store import AlertStore
from redisolar.errors import InvalidQuery, SiteNotFound
from redisolar.services import Services

STATES = ("open", "resolved")
MAX_LIMIT = 500
EXTENSION = "redisolar.alerts"


def evaluator(services: Services) -> AlertEvaluator:
    """The evaluator of ``services`` (one per container: it keeps its caches between passes)."""
    found = services.extensions.get(EXTENSION)
    if not isinstance(found, AlertEvaluator):
        found = AlertEvaluator(services)
        services.extensions[EXTENSION] = found
    return found


def rules(services: Services) -> RuleStore:
    return RuleStore(services.redis, services.keys)


def check_rule_site(services: Services, rule: Rule) -> None:
    """A per-site rule must name an existing site (404)."""
    if rule.site_id is not None and not services.sites.exists(rule.site_id):
        raise SiteNotFound(rule.site_id)


def create_rule(services: Services, rule: Rule) -> dict[str, Any]:
    check_rule_site(services, rule)
    return rule_out(rules(services).put(rule, create=True))


def replace_rule(services: Services, rule: Rule) -> dict[str, Any]:
    check_rule_site(services, rule)
    return rule_out(rules(services).put(rule, create=False))


def list_rules(services: Services) -> list[dict[str, Any]]:
    return [rule_out(r) for r in rules(services).all()]


def list_alerts(
    services: Services, state: str | None, site_id: int | None, limit: int, cursor: int
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of alerts and the next cursor (None: the last page). With ``site_id``: the site's kept
    alerts (newest opened first), of ``state`` if given; without: the fleet's open alerts (newest
    opened first) or resolved ones (newest resolved first; ``state`` defaults to open)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidQuery(f"limit must be 1 to {MAX_LIMIT}")
    store = AlertStore(services.redis, services.keys)
    if site_id is not None:
        alerts = [a for a in site_history(services, site_id) if state is None or a["state"] == state]
        page = alerts[cursor : cursor + limit]
        return page, cursor + limit if cursor + limit < len(alerts) else None
    page, more = store.fleet_page(state or "open", cursor, limit)
    return page, cursor + limit if more else None


def site_history(services: Services, site_id: int) -> list[dict[str, Any]]:
    """Every kept alert of a site, newest first; 404 for an unknown site."""
    if not services.sites.exists(site_id):
        raise SiteNotFound(site_id)
    return AlertStore(services.redis, services.keys).site_alerts(site_id)


def evaluate(services: Services, now: datetime | None = None) -> PassReport | None:
    """One evaluation pass now (None: another process is running one)."""
    return evaluator(services).evaluate(now)


def open_counts(services: Services) -> dict[str, int]:
    return AlertStore(services.redis, services.keys).open_counts()
