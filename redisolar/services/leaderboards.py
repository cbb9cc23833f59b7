"""Leaderboards: a page of a board, a site's position with its neighbours, and reconciling them.

Boards: ``capacity`` (kW, no day), ``generation`` and ``efficiency`` (of a date D: every site over
its own local D). Without ``day``, "today" is: for a board page, the fleet's today
(:meth:`~redisolar.dao.leaderboard_dao.LeaderboardDao.fleet_today`: the date in ``DEFAULT_TIMEZONE``,
or yesterday while no site has reached that date yet); for a site's position, the site's own local
today (the date its current readings count towards).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from redisolar.dao.key_manager import LEADERBOARD_TYPES
from redisolar.errors import InvalidQuery
from redisolar.localtime import fleet_today
from redisolar.models.site import LeaderboardEntry
from redisolar.services.analytics import require_site
from redisolar.tasks.leaderboard_updater import UpdateReport

if TYPE_CHECKING:
    from redisolar.services import Services


@dataclass(frozen=True)
class BoardPage:
    """A page of a board, best first, and the board's stats."""

    kind: str
    day: date | None
    entries: list[LeaderboardEntry]
    stats: dict[str, Any]


@dataclass(frozen=True)
class Position:
    """A site's rank and score on a board, with its neighbours (itself included), and the site's
    IANA zone (its local day is the board's day)."""

    kind: str
    day: date | None
    rank: int
    score: float
    surrounding: list[LeaderboardEntry]
    timezone: str


def board_kind(leaderboard_type: str) -> str:
    """``leaderboard_type`` if it names a board, else ``InvalidQuery`` (400)."""
    if leaderboard_type not in LEADERBOARD_TYPES:
        raise InvalidQuery(
            f"Invalid leaderboard type: {leaderboard_type}. Must be one of: {', '.join(LEADERBOARD_TYPES)}"
        )
    return leaderboard_type


def board_day(services: Services, kind: str, day: date | None) -> date | None:
    """The day a board request is about: None for capacity, else ``day`` or the fleet's today."""
    if kind == "capacity" or day is not None:
        return None if kind == "capacity" else day
    return services.leaderboards.fleet_today(services.settings.default_timezone)


def position_day(services: Services, kind: str, site_id: int, day: date | None) -> date | None:
    """The day a site's position is about: None for capacity, else ``day`` or the site's local today
    (the fleet's zone for a site without one; one read of the site)."""
    if kind == "capacity" or day is not None:
        return None if kind == "capacity" else day
    site = services.sites.find_by_id(site_id)
    return fleet_today(
        site.timezone if site is not None and site.timezone else services.settings.default_timezone
    )


def board_page(
    services: Services, leaderboard_type: str, limit: int = 10, offset: int = 0, day: date | None = None
) -> BoardPage:
    """Entries ``offset + 1 .. offset + limit`` of a board with their sites, and its stats."""
    kind = board_kind(leaderboard_type)
    when = board_day(services, kind, day)
    entries, stats = services.leaderboards.get_leaders_and_stats(kind, limit, offset, when)
    return BoardPage(kind, when, entries, stats)


def site_position(
    services: Services,
    leaderboard_type: str,
    site_id: int,
    context: int = 2,
    day: date | None = None,
    *,
    known: bool | None = None,
) -> Position | None:
    """A site's rank and score with ``context`` neighbours on each side; None when the site is not on
    the board (``SiteNotFound`` when there is no such site). The site's zone comes from its own
    entry (the neighbours' details are read in one round trip, itself included)."""
    kind = board_kind(leaderboard_type)
    require_site(services, site_id, known)
    when = position_day(services, kind, site_id, day)
    surrounding = services.leaderboards.get_sites_around_rank(site_id, kind, context, when)
    mine = [entry for entry in surrounding if entry.site.id == site_id]
    if not mine:
        return None
    zone = mine[0].site.timezone or services.settings.default_timezone
    return Position(kind, when, mine[0].rank, mine[0].score, surrounding, zone)


def reconcile(services: Services, day: date | None = None) -> UpdateReport | None:
    """Reconcile the boards now (capacity, and ``day``'s generation and efficiency; default the
    fleet's today, in ``DEFAULT_TIMEZONE``);
    None when another process holds the reconciler's lock (that run does the work)."""
    return services.updater.update_all_leaderboards(day)
