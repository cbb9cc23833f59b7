"""Sites: register, change and delete them, kept consistent with their data and the leaderboards;
list, search and count them."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from redisolar.alerts.store import AlertStore
from redisolar.dao.site_dao_redis import SearchResult
from redisolar.errors import SiteNotFound
from redisolar.models.site import Site
from redisolar.timezones import with_timezone

if TYPE_CHECKING:
    from redisolar.services import Services


def all_sites(services: Services) -> list[Site]:
    """Every site, by id."""
    return services.sites.find_all()


def get_site(services: Services, site_id: int) -> Site:
    """One site (``SiteNotFound`` if there is none)."""
    site = services.sites.find_by_id(site_id)
    if site is None:
        raise SiteNotFound(site_id)
    return site


def create_site(services: Services, site: Site) -> Site:
    """Register a new site (409 ``SiteAlreadyExists`` if the id is taken); it joins the capacity board.
    Without a ``timezone`` it gets its coordinates' or ``DEFAULT_TIMEZONE`` (:mod:`redisolar.timezones`)."""
    site = with_timezone(site, services.settings.default_timezone)
    services.sites.create(site)
    return site


def update_site(services: Services, site: Site) -> Site:
    """Replace a site's details; a capacity change re-scores its efficiency in every day board. Without
    a ``timezone`` the zone is derived again from the new coordinates (:mod:`redisolar.timezones`); a
    changed zone moves the site's day board entries to its new local days over the retention window
    (:meth:`~redisolar.tasks.leaderboard_updater.LeaderboardUpdater.rebuild_site_days`)."""
    site = with_timezone(site, services.settings.default_timezone)
    old = get_site(services, site.id)
    services.sites.update(site)
    if old.timezone != site.timezone:  # its day entries counted the former zone's days
        services.updater.rebuild_site_days(site)
    elif old.capacity != site.capacity:
        services.leaderboards.rescore_efficiency(site.id, site.capacity, site.timezone)
    return site


def delete_site(services: Services, site_id: int) -> None:
    """Delete a site, its readings, its leaderboard entries and its alerts (``SiteNotFound`` if
    unknown; the fleet's alert index drops it at the next evaluation)."""
    if not services.sites.exists(site_id):
        raise SiteNotFound(site_id)
    services.timeseries.delete_site_data(site_id)
    services.leaderboards.remove_site_from_leaderboards(site_id)
    AlertStore(services.redis, services.keys).delete_site(site_id)
    services.sites.delete(site_id)


def delete_all_sites(services: Services) -> int:
    """Delete every site with its data and leaderboard entries. Returns how many were deleted."""
    sites = services.sites.find_all()
    for site in sites:
        delete_site(services, site.id)
    return len(sites)


def search_sites(services: Services, **filters: Any) -> SearchResult:
    """Sites matching every given filter (see ``SiteDaoRedis.search``)."""
    return services.sites.search(**filters)


def site_stats(services: Services) -> dict[str, Any]:
    """Totals over every site, and per state: ``{"total_sites", "total_capacity_kw", "total_panels",
    "average_capacity_kw", "states": {STATE: {"sites", "capacity_kw"}}}``: one round trip, O(states),
    from the running totals the site index keeps (exact: the same numbers as :func:`stats_of`)."""
    return services.sites.stats()


def stats_of(sites: list[Site]) -> dict[str, Any]:
    """The stats of ``sites`` computed from the sites themselves (see :func:`site_stats`)."""
    states: dict[str, dict[str, Any]] = defaultdict(lambda: {"sites": 0, "capacities": []})
    for site in sites:
        states[site.state]["sites"] += 1
        states[site.state]["capacities"].append(site.capacity)
    total = math.fsum(site.capacity for site in sites)
    return {
        "total_sites": len(sites),
        "total_capacity_kw": total,
        "total_panels": sum(site.panels for site in sites),
        "average_capacity_kw": total / len(sites) if sites else 0.0,
        "states": {
            state: {"sites": s["sites"], "capacity_kw": math.fsum(s["capacities"])}
            for state, s in sorted(states.items())
        },
    }
